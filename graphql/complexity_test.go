package graphql_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/graphql"
)

// A query past the complexity limit is refused before it runs, with a
// message that says so; one just within it runs.
func TestComplexityLimit(t *testing.T) {
	e := newEnv(t, nil)
	aliased := func(n int) string {
		var b strings.Builder
		b.WriteString("query {")
		for i := range n {
			fmt.Fprintf(&b, " p%d: projects { name }", i)
		}
		b.WriteString(" }")
		return b.String()
	}
	// Each alias costs 2 (projects and its name).
	var data map[string]any
	e.do(t, aliased(graphql.MaxComplexity/2), nil).ok(t, &data)
	if len(data) != graphql.MaxComplexity/2 {
		t.Fatalf("got %d fields, want %d", len(data), graphql.MaxComplexity/2)
	}
	code, msg := e.do(t, aliased(graphql.MaxComplexity/2+1), nil).code(t)
	if code != "COMPLEXITY_LIMIT_EXCEEDED" || !strings.Contains(msg, fmt.Sprint(graphql.MaxComplexity)) {
		t.Fatalf("past the limit: code %q, message %q; want COMPLEXITY_LIMIT_EXCEEDED naming the limit %d", code, msg, graphql.MaxComplexity)
	}
}
