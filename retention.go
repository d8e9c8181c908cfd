package slipway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// LogRetention is how long, and how much of, a project's build logs the
// store keeps. The zero value keeps everything: retention is off unless a
// project sets it. The deployment records are always kept; only their log
// lines go (see Deployment.LogPruned).
type LogRetention struct {
	// MaxAge drops the log of a deployment that ended longer ago than
	// this; 0 means no age limit.
	MaxAge time.Duration
	// MaxBytes drops the logs of the project's oldest ended deployments
	// while the project's stored log text is larger than this; 0 means
	// no size limit.
	MaxBytes int64
}

// logRetentionJSON is LogRetention as the API and `--json` output spell
// it: whole seconds and bytes, null for no limit.
type logRetentionJSON struct {
	MaxAgeSeconds *int64 `json:"maxAgeSeconds"`
	MaxBytes      *int64 `json:"maxBytes"`
}

// MarshalJSON writes {"maxAgeSeconds": N|null, "maxBytes": N|null}.
func (r LogRetention) MarshalJSON() ([]byte, error) {
	var j logRetentionJSON
	if r.MaxAge > 0 {
		s := int64(r.MaxAge / time.Second)
		j.MaxAgeSeconds = &s
	}
	if r.MaxBytes > 0 {
		j.MaxBytes = &r.MaxBytes
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *LogRetention) UnmarshalJSON(b []byte) error {
	var j logRetentionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = LogRetention{}
	if j.MaxAgeSeconds != nil {
		r.MaxAge = time.Duration(*j.MaxAgeSeconds) * time.Second
	}
	if j.MaxBytes != nil {
		r.MaxBytes = *j.MaxBytes
	}
	return nil
}

// IsZero reports whether r keeps everything.
func (r LogRetention) IsZero() bool { return r.MaxAge == 0 && r.MaxBytes == 0 }

// String describes r for people, e.g. "30d, 500 MB" or "keep everything".
func (r LogRetention) String() string {
	if r.IsZero() {
		return "keep everything"
	}
	var parts []string
	if r.MaxAge > 0 {
		parts = append(parts, FormatLogAge(r.MaxAge))
	}
	if r.MaxBytes > 0 {
		parts = append(parts, humanize.Bytes(uint64(r.MaxBytes)))
	}
	return strings.Join(parts, ", ")
}

// Limits on retention settings: shorter or smaller would prune logs that
// are still being looked at, longer or larger is "keep everything" in
// practice and more likely a typo.
const (
	MinLogAge   = time.Hour
	MaxLogAge   = 100 * 365 * 24 * time.Hour
	MinLogBytes = 1 << 20 // 1 MiB
)

// offWords switch a retention limit off.
var offWords = map[string]bool{"0": true, "off": true, "none": true, "forever": true}

// ParseLogAge parses a log retention age: a number with a unit d (days),
// w (weeks) or h (hours), or anything time.ParseDuration reads ("36h",
// "90m"); "0", "off", "none" or "forever" mean no age limit (0). Other
// input, negative ages and ages outside MinLogAge..MaxLogAge are EINVALID
// with a message saying what to write.
func ParseLogAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if offWords[s] {
		return 0, nil
	}
	bad := func(why string) error {
		return Errorf(EINVALID, "invalid log retention age %q: %s; use a number of days, weeks or hours such as 30d, 2w or 12h, or \"off\" to keep logs forever", s, why)
	}
	var d time.Duration
	if n, unit, ok := cutUnit(s); ok {
		v, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, bad("not a number")
		}
		if v < 0 {
			return 0, bad("it is negative")
		}
		if v*float64(unit) > float64(MaxLogAge) {
			return 0, bad("more than 100 years")
		}
		d = time.Duration(v * float64(unit))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad("unknown format")
		}
	}
	switch {
	case d < 0:
		return 0, bad("it is negative")
	case d < MinLogAge:
		return 0, bad("shorter than an hour")
	case d > MaxLogAge:
		return 0, bad("more than 100 years")
	}
	return d, nil
}

// cutUnit splits "30d" into "30" and a day, for the units
// time.ParseDuration does not know.
func cutUnit(s string) (string, time.Duration, bool) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok && n != "" {
			return n, unit, true
		}
	}
	return "", 0, false
}

// FormatLogAge writes d the way ParseLogAge reads it, in the largest
// whole unit: "30d", "2w", "36h".
func FormatLogAge(d time.Duration) string {
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	switch {
	case d <= 0:
		return "off"
	case d%week == 0:
		return fmt.Sprintf("%dw", d/week)
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// ParseLogSize parses a log retention size such as "500MB" (10^6 bytes),
// "2GiB" (2^30 bytes) or "750 kB"; "0", "off", "none" or "forever" mean no
// size limit (0). Other input and sizes under MinLogBytes are EINVALID
// with a message saying what to write.
func ParseLogSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if offWords[strings.ToLower(s)] {
		return 0, nil
	}
	bad := func(why string) error {
		return Errorf(EINVALID, "invalid log retention size %q: %s; use a size such as 500MB, 2GB or 1GiB, or \"off\" for no size limit", s, why)
	}
	if strings.HasPrefix(s, "-") {
		return 0, bad("it is negative")
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, bad("unknown format")
	}
	if n < MinLogBytes {
		return 0, bad("smaller than 1 MiB")
	}
	if n > 1<<62 {
		return 0, bad("too large")
	}
	return int64(n), nil
}

// PruneResult says what one pass of log retention removed.
type PruneResult struct {
	// Deployments is how many deployments' logs were dropped.
	Deployments int
	// Lines is how many log lines were deleted.
	Lines int64
	// Bytes is how much log text was deleted.
	Bytes int64
	// AppLines is how many lines of app output were deleted (see
	// AppLogStore).
	AppLines int64
}

// LogPruner is a store that applies the projects' log retention. The
// SQLite store is one.
type LogPruner interface {
	// SetLogRetention changes a project's retention and returns the
	// project; an unknown project is ENOTFOUND.
	SetLogRetention(ctx context.Context, project string, r LogRetention) (*Project, error)
	// PruneLogs applies every project's retention as of now: it deletes
	// the log lines of ended deployments that ended before now minus the
	// project's MaxAge, then those of the project's oldest ended
	// deployments while its stored log text exceeds MaxBytes, and marks
	// those deployments LogPruned. The log of a deployment that has not
	// ended is never touched.
	PruneLogs(ctx context.Context, now time.Time) (PruneResult, error)
}
