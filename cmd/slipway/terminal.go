package main

import (
	"regexp"
	"strings"
	"unicode"
)

// escapeSeq matches a terminal escape sequence: a CSI sequence (group 1
// its parameters, group 2 its final byte), a string sequence (OSC, DCS,
// SOS, PM, APC: window titles, hyperlinks, ...) up to BEL or ST or the
// end of the line, or any other ESC sequence. It follows ESCAPE_RE in
// web/static/app.js, which renders the same lines in the browser.
var escapeSeq = regexp.MustCompile(`\x1b\[([0-9;:?<=>]*)[ -/]*([@-~])|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?`)

// sgrParams are the parameters of a colour or text style sequence.
var sgrParams = regexp.MustCompile(`^[0-9;:]*$`)

// terminalText returns a build output line as it is safe to print on a
// terminal: colours and text styles (SGR, "ESC [ ... m") stay; every
// other escape sequence (cursor moves, clearing the screen, window titles,
// hyperlinks, ...) and every other control character but tab is dropped,
// so a build cannot rewrite the terminal of whoever reads its log.
func terminalText(s string) string {
	s = escapeSeq.ReplaceAllStringFunc(s, func(seq string) string {
		m := escapeSeq.FindStringSubmatch(seq)
		if m[2] == "m" && sgrParams.MatchString(m[1]) {
			return seq
		}
		return ""
	})
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\x1b' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, s)
}
