package natslog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// TestAppendLineJSON: the Publisher's hand-written encoding decodes to the
// same line as encoding/json's.
func TestAppendLineJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 21, 40, 15, 796000123, time.UTC)
	texts := []string{
		"", "plain", `quote " and \ backslash`, "tab\tcr\rnl\n", "\x00\x01\x1f\x7f",
		"<html> & 'x'", "ünïcödé €", "line\u2028sep\u2029para", "\x1b[31mred\x1b[0m", "\u00e2\u0080",
	}
	for _, text := range texts {
		for _, step := range []string{"", "build 3/9"} {
			l := slipway.LogLine{Deployment: "d-1", N: 42, Time: at, Stream: "stderr", Step: step, Text: text}
			got, ok := appendLineJSON(nil, &l)
			if !ok {
				t.Fatalf("appendLineJSON(%q) failed", text)
			}
			var back slipway.LogLine
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("appendLineJSON(%q) = %s: not JSON: %v", text, got, err)
			}
			if back != l {
				t.Errorf("appendLineJSON(%q) decodes to %+v, want %+v", text, back, l)
			}
			want, _ := json.Marshal(l)
			var a, b any
			_ = json.Unmarshal(want, &a)
			_ = json.Unmarshal(got, &b)
			if ja, _ := json.Marshal(a); string(ja) != func() string { jb, _ := json.Marshal(b); return string(jb) }() {
				t.Errorf("appendLineJSON(%q) = %s, encoding/json says %s", text, got, want)
			}
		}
	}
	l := slipway.LogLine{Deployment: "d", N: 1, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := appendLineJSON(nil, &l); ok {
		t.Error("appendLineJSON accepted the year 10000, which encoding/json refuses")
	}
}
