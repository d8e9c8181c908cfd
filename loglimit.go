package slipway

import (
	"context"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
)

// LogLimit bounds one deployment's build log. A build whose output passes
// either bound is stopped and fails with LogLimitExceeded; the lines past
// it are not stored. Zero fields take the defaults (Effective).
type LogLimit struct {
	// MaxLines is the most lines a deployment's log may hold; 0 means
	// DefaultLogMaxLines.
	MaxLines int64 `json:"maxLines"`
	// MaxBytes is the most bytes of log text it may hold; 0 means
	// DefaultLogMaxBytes.
	MaxBytes int64 `json:"maxBytes"`
}

// The per-deployment log limits of a project that sets none.
const (
	DefaultLogMaxLines = 100_000
	DefaultLogMaxBytes = 100 << 20 // 100 MiB
	// MinLogMaxLines and MinLogMaxBytes are the smallest limits a project
	// may set: below them a build could not even say what failed.
	MinLogMaxLines = 10
	MinLogMaxBytes = 1 << 10
)

// LogLimitExceeded is the reason a deployment whose log passed its limit
// fails with (the message starts with it).
const LogLimitExceeded = "log limit exceeded"

// Effective returns l with the defaults in its zero fields.
func (l LogLimit) Effective() LogLimit {
	if l.MaxLines <= 0 {
		l.MaxLines = DefaultLogMaxLines
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLogMaxBytes
	}
	return l
}

// String says l as people read it, e.g. "100000 lines or 100 MiB".
func (l LogLimit) String() string {
	e := l.Effective()
	return strconv.FormatInt(e.MaxLines, 10) + " lines or " + humanize.IBytes(uint64(e.MaxBytes))
}

// ParseLogMaxLines parses a per-deployment line limit: a whole number of
// at least MinLogMaxLines, or "default" (0).
func ParseLogMaxLines(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "default" || s == "0" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || n < MinLogMaxLines {
		return 0, Errorf(EINVALID, "invalid log line limit %q: use a whole number of at least %d, or \"default\" for %d", s, MinLogMaxLines, DefaultLogMaxLines)
	}
	return n, nil
}

// ParseLogMaxBytes parses a per-deployment log size limit such as
// "100MB" or "1GiB" (at least MinLogMaxBytes), or "default" (0).
func ParseLogMaxBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if l := strings.ToLower(s); l == "default" || l == "0" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || strings.HasPrefix(s, "-") || n < MinLogMaxBytes || n > 1<<50 {
		return 0, Errorf(EINVALID, "invalid log size limit %q: use a size of at least 1KiB such as 100MB or 1GiB, or \"default\" for 100 MiB", s)
	}
	return int64(n), nil
}

// LogLimiter is a store that keeps the projects' log limits. The SQLite
// store is one.
type LogLimiter interface {
	// SetLogLimit changes a project's log limit and returns the project;
	// an unknown project is ENOTFOUND, a negative limit EINVALID.
	SetLogLimit(ctx context.Context, project string, l LogLimit) (*Project, error)
}
