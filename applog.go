package slipway

import (
	"context"
	"time"
)

// AppLogLine is one line of a project's app output: what a container of
// one of its releases wrote on stdout or stderr, with the values of the
// app's environment masked. N numbers the project's app lines from 1 in
// the order they were collected, across releases.
type AppLogLine struct {
	Project string `json:"project"`
	N       int64  `json:"n"`
	// Release is the deployment whose image wrote the line.
	Release string    `json:"release"`
	Time    time.Time `json:"time"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

// AppLogQuery selects a project's stored app lines.
type AppLogQuery struct {
	Project string
	// Release keeps only the lines of one release (deployment id); ""
	// keeps all.
	Release string
	// After keeps the lines numbered above it.
	After int64
	// Tail keeps the last Tail lines of those selected (in order);
	// 0 keeps them all.
	Tail int
}

// AppLogMaxLines is how many lines of its app's output the store keeps
// per project at most, whatever its log retention says: app output has
// no end, unlike a build's. The oldest go first.
const AppLogMaxLines = 100_000

// AppLogStore keeps the projects' app output (see AppLogLine). The
// project's log retention (LogRetention) applies to it as to its build
// logs, by the lines' age and by the size of their text, and at most
// AppLogMaxLines lines are kept.
type AppLogStore interface {
	// AppendAppLogLines stores lines; a line already stored (same
	// project and number) is ignored, so redelivery is harmless. A line
	// of an unknown project is ENOTFOUND.
	AppendAppLogLines(ctx context.Context, lines []AppLogLine) error
	// AppLogLines returns the lines q selects, in order.
	AppLogLines(ctx context.Context, q AppLogQuery) ([]AppLogLine, error)
	// LastAppLogLine returns the project's last stored line, or
	// ENOTFOUND when there is none.
	LastAppLogLine(ctx context.Context, project string) (*AppLogLine, error)
}

// AppState is what a project's app is doing, as the API shows it.
type AppState string

// App states.
const (
	// AppServing: its current release runs and answers.
	AppServing AppState = "serving"
	// AppFrozen: paused, memory kept; the next request thaws it.
	AppFrozen AppState = "frozen"
	// AppStopped: not running; the next request starts it.
	AppStopped AppState = "stopped"
	// AppFailed: its last start did not become healthy.
	AppFailed AppState = "failed"
	// AppNone: nothing deployed yet, or apps are off.
	AppNone AppState = "none"
)

// AppStatus is the state of a project's app.
type AppStatus struct {
	State AppState
	// Release is the deployment whose image runs (or last ran); "" when
	// none ever ran here.
	Release string
	// LastWake is when a request last woke the app (zero: never since
	// the server started), LastWakeDuration how long that wake took.
	LastWake         time.Time
	LastWakeDuration time.Duration
	// URL is where the app answers, "" while the server serves no apps.
	URL string
}
