package publish

import "unicode/utf8"

// splitText cuts s (valid UTF-8) into pieces of at most max bytes, at rune
// boundaries. An empty s is one empty line.
func splitText(s string, max int) []string {
	if len(s) <= max {
		return []string{s}
	}
	var parts []string
	for len(s) > max {
		cut := runeCut(s, max)
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return parts
}

// runeCut returns the largest cut <= max that does not split a rune (or max
// itself if no rune start is near, as in invalid UTF-8).
func runeCut[T ~string | ~[]byte](s T, max int) int {
	for cut := max; cut > 0 && cut > max-utf8.UTFMax; cut-- {
		if utf8.RuneStart(s[cut]) {
			return cut
		}
	}
	return max
}
