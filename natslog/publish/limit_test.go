package publish_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
)

// TestLogLimit floods a publisher past its line and byte limits: the
// stream (and so the store) and stdout get the lines up to the limit and
// one line saying "log limit exceeded", nothing after it, and OnLimit is
// called once. Lines already in the stream count against MaxLines, the
// text of earlier publishers (UsedBytes) against MaxBytes.
func TestLogLimit(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "lines", "bytes")
	a := logtest.StartArchiver(t, s.URL(), store)
	for _, tc := range []struct {
		dep               string
		maxLines, maxByte int64
		kept              int // lines stored before the notice
	}{
		{dep: "lines", maxLines: 50, kept: 50},
		{dep: "bytes", maxByte: 1000, kept: 100}, // "line NNNNN" is 10 bytes
	} {
		var stdout bytes.Buffer
		var hits atomic.Int32
		cfg := publish.Config{URL: s.URL(), Deployment: tc.dep, Stdout: &stdout, MaxLines: tc.maxLines, MaxBytes: tc.maxByte, OnLimit: func() { hits.Add(1) }}
		// A first publisher (the fetch activity) writes 5 lines.
		p := logtest.NewPublisher(t, cfg)
		for i := 1; i <= 5; i++ {
			p.Line("stdout", fmt.Sprintf("line %05d", i))
		}
		logtest.ClosePublisher(t, p)
		if got := p.Bytes(); got != 50 {
			t.Errorf("%s: Bytes() = %d after 5 lines of 10 bytes, want 50", tc.dep, got)
		}
		// The next (the build) floods; the first one's text counts.
		cfg.UsedBytes = p.Bytes()
		p = logtest.NewPublisher(t, cfg)
		for i := 6; i <= 10_000; i++ {
			p.Line("stdout", fmt.Sprintf("line %05d", i))
		}
		if !p.LimitExceeded() {
			t.Errorf("%s: LimitExceeded() = false after the flood", tc.dep)
		}
		logtest.ClosePublisher(t, p)
		want := tc.kept + 1
		logtest.WaitFor(t, a, tc.dep, int64(want))
		lines := logtest.StoredLines(t, store, tc.dep)
		if len(lines) != want {
			t.Fatalf("%s: stored %d lines, want %d", tc.dep, len(lines), want)
		}
		last := lines[len(lines)-1]
		if !strings.Contains(last.Text, slipway.LogLimitExceeded) || last.Stream != "stderr" {
			t.Errorf("%s: last stored line = %+v, want one saying %q", tc.dep, last, slipway.LogLimitExceeded)
		}
		if prev := lines[len(lines)-2].Text; prev != fmt.Sprintf("line %05d", want-1) {
			t.Errorf("%s: line before the notice = %q, want line %05d", tc.dep, prev, want-1)
		}
		if n := strings.Count(stdout.String(), "\n"); n != want {
			t.Errorf("%s: stdout has %d lines, want %d", tc.dep, n, want)
		}
		if got := logtest.SubjectCount(t, s.URL(), tc.dep); got != uint64(want) {
			t.Errorf("%s: stream holds %d lines, want %d", tc.dep, got, want)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("%s: OnLimit called %d times, want 1", tc.dep, n)
		}
	}
}
