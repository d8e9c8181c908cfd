package natslog_test

import (
	"fmt"
	"testing"

	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog"
)

func TestSubject(t *testing.T) {
	if got, want := natslog.Subject("web", "d123"), "slipway.logs.web.d123"; got != want {
		t.Errorf("Subject(%q, %q) = %q, want %q", "web", "d123", got, want)
	}
}

func TestDecodeLines(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []int64 // line numbers; nil: an error
	}{
		{"one line, as earlier versions published", logtest.LineJSON("d1", 7), []int64{7}},
		{"a batch", logtest.BatchJSON("d1", 3, 6), []int64{3, 4, 5, 6}},
		{"a batch of one", "[" + logtest.LineJSON("d1", 2) + "]", []int64{2}},
		{"leading space", "  \n" + logtest.BatchJSON("d1", 1, 2), []int64{1, 2}},
		{"empty batch", "[]", nil},
		{"not JSON", "line 1", nil},
		{"cut short", logtest.BatchJSON("d1", 1, 3)[:40], nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := natslog.DecodeLines([]byte(tc.data))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("DecodeLines(%q) = %v, want an error", tc.data, lines)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeLines: %v", err)
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("DecodeLines = %d lines, want %d", len(lines), len(tc.want))
			}
			for i, l := range lines {
				if l.N != tc.want[i] || l.Deployment != "d1" || l.Text != fmt.Sprintf("line %d", l.N) || l.Stream != "stdout" || l.Time.IsZero() {
					t.Errorf("line %d = %+v", i, l)
				}
			}
		})
	}
}
