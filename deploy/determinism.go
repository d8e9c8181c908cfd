package deploy

import "slices"

// sortedKeys returns m's keys in order, for workflow code that must not
// range over a map (Go randomises map order; a replay must do what the
// first run did). The map range below only collects keys, and the sort
// makes what the caller does with them deterministic; workflowcheck
// (scripts/test) is told so by the comment.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	// Collected only, sorted below:
	//workflowcheck:ignore
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
