package logtest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// ServiceLog is a service log (slog, in text as the agent writes its own
// to agent.log) that a test can read and wait on.
type ServiceLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{} // closed and replaced on every write
}

// NewServiceLog returns a logger at debug level writing to a new
// ServiceLog.
func NewServiceLog() (*slog.Logger, *ServiceLog) {
	l := &ServiceLog{wrote: make(chan struct{})}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// Write appends a record.
func (l *ServiceLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	close(l.wrote)
	l.wrote = make(chan struct{})
	return len(b), nil
}

// String returns everything logged so far.
func (l *ServiceLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Wait waits up to within for a record containing msg and returns that
// record's line; it fails the test if none comes.
func (l *ServiceLog) Wait(t testing.TB, msg string, within time.Duration) string {
	t.Helper()
	timeout := time.After(within)
	for {
		l.mu.Lock()
		for line := range strings.Lines(l.buf.String()) {
			if strings.Contains(line, msg) {
				l.mu.Unlock()
				return line
			}
		}
		wrote := l.wrote
		l.mu.Unlock()
		select {
		case <-wrote:
		case <-timeout:
			t.Fatalf("no %q in the log within %s; it holds:\n%s", msg, within, l.String())
		}
	}
}
