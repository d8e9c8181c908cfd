package main

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func TestTerminalText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\ttext é", "plain\ttext é"},
		{"\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold\x1b[m", "\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold\x1b[m"},
		{"\x1b[38:2::255:0:0mtruecolour", "\x1b[38:2::255:0:0mtruecolour"},
		{"a\x1b[2Jb\x1b[Hc\x1b[10;5Hd\x1b[1Ae\x1b[Kf", "abcdef"},
		{"\x1b[?25lhidden cursor\x1b[?1049h", "hidden cursor"},
		{"\x1b]0;pwned title\x07text", "text"},
		{"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"\x1b]2;unterminated title", ""},
		{"\x1bPdevice control\x1b\\ok", "ok"},
		{"\x1bc reset \x1b7saved\x1b8 \x1b(0charset", " reset saved charset"},
		{"bell\x07 back\bspace cr\rline del\x7f nul\x00", "bell backspace crline del nul"},
		{"c1 \u009b2J csi", "c1 2J csi"},
		{"lone esc \x1b", "lone esc "},
		{"half \x1b[31", "half 31"},
	}
	for _, tt := range tests {
		if got := terminalText(tt.in); got != tt.want {
			t.Errorf("terminalText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// slipway logs prints colours but no other escape sequence; --json keeps
// the text as it is (encoding/json escapes control characters).
func TestLogsStripsEscapes(t *testing.T) {
	ts := newServer(t)
	ts.seed(t)
	text := "\x1b]0;title\x07\x1b[2J\x1b[32mok\x1b[0m\r"
	if err := ts.store.AppendLogLines(t.Context(), []slipway.LogLine{{Deployment: "d-bad", N: 1, Time: time.Now(), Stream: "stdout", Text: text}}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ts.slipwayCmd(t, "logs", "d-bad")
	if want := "\x1b[32mok\x1b[0m\n"; code != 0 || stdout != want {
		t.Errorf("logs = exit %d (stderr %q), stdout %q, want %q", code, stderr, stdout, want)
	}
	code, stdout, _ = ts.slipwayCmd(t, "logs", "--json", "d-bad")
	if code != 0 || !strings.Contains(stdout, `\u001b]0;title\u0007`) || strings.Contains(stdout, "\x1b") {
		t.Errorf("logs --json = exit %d, stdout %q", code, stdout)
	}
}
