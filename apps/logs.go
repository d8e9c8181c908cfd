package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/slipway-ci/slipway/redact"
)

// Logs returns the last n lines of inst's output (stdout and stderr, in
// the order written), with the values of its Spec.Env masked. It reads
// the container's log file (podman's k8s-file driver), so it works as
// well for a stopped or failed app.
func (r *Runtime) Logs(ctx context.Context, inst *Instance, n int) ([]string, error) {
	lines, _, err := r.logs(ctx, inst.Name, n)
	if err != nil {
		return nil, fmt.Errorf("logs of app %s: %w", inst.Name, err)
	}
	return lines, nil
}

// logs returns the last n lines of the container name's output, masked,
// and the masker of its environment.
func (r *Runtime) logs(ctx context.Context, name string, n int) ([]string, masker, error) {
	c, err := r.svc.inspect(ctx, name)
	if err != nil {
		return nil, masker{}, err
	}
	m := maskerOf(c)
	lc := c.HostConfig.LogConfig
	if lc.Type != "k8s-file" || lc.Path == "" {
		return nil, m, fmt.Errorf("its log driver is %q, not k8s-file", lc.Type)
	}
	lines, err := tailLog(lc.Path, n)
	if err != nil {
		return nil, m, err
	}
	for i := range lines {
		lines[i] = m.mask(lines[i])
	}
	return lines, m, nil
}

// LogPath returns the file inst's output is written to, in podman's
// k8s-file format (see ParseLogLine), for a follower of the app's logs.
// Its lines are not masked: mask them with Logs' rules before they go
// anywhere (the follower knows the app's Spec.Env).
func (r *Runtime) LogPath(ctx context.Context, inst *Instance) (string, error) {
	c, err := r.svc.inspect(ctx, inst.Name)
	if err != nil {
		return "", fmt.Errorf("logs of app %s: %w", inst.Name, err)
	}
	if c.HostConfig.LogConfig.Type != "k8s-file" {
		return "", fmt.Errorf("logs of app %s: its log driver is %q, not k8s-file", inst.Name, c.HostConfig.LogConfig.Type)
	}
	return c.HostConfig.LogConfig.Path, nil
}

// LogSource returns what a follower of inst's output needs: the file it
// is written to (as LogPath) and a function masking the values of its
// Spec.Env in a line, as Logs masks them.
func (r *Runtime) LogSource(ctx context.Context, inst *Instance) (path string, mask func(string) string, err error) {
	c, err := r.svc.inspect(ctx, inst.Name)
	if err != nil {
		return "", nil, fmt.Errorf("logs of app %s: %w", inst.Name, err)
	}
	if lc := c.HostConfig.LogConfig; lc.Type != "k8s-file" || lc.Path == "" {
		return "", nil, fmt.Errorf("logs of app %s: its log driver is %q, not k8s-file", inst.Name, lc.Type)
	}
	return c.HostConfig.LogConfig.Path, maskerOf(c).mask, nil
}

// LogLine is one line of a k8s-file log.
type LogLine struct {
	// Time is the line's timestamp as written (RFC 3339 with nanoseconds).
	Time string
	// Stream is "stdout" or "stderr".
	Stream string
	// Partial says the line goes on in the next one (a long line cut).
	Partial bool
	// Text is the line's text.
	Text string
}

// ParseLogLine parses one line of a k8s-file log:
// "<time> <stdout|stderr> <P|F> <text>".
func ParseLogLine(s string) (LogLine, bool) {
	fields := strings.SplitN(s, " ", 4)
	if len(fields) < 3 || (fields[2] != "P" && fields[2] != "F") {
		return LogLine{}, false
	}
	l := LogLine{Time: fields[0], Stream: fields[1], Partial: fields[2] == "P"}
	if len(fields) == 4 {
		l.Text = fields[3]
	}
	return l, true
}

// tailLogBytes is how much of the end of a log file tailLog reads.
const tailLogBytes = 256 << 10

// tailLog returns the last n lines of a k8s-file log: lines of the form
// "<time> <stdout|stderr> <P|F> <text>", where P marks a part of a line
// whose rest follows.
func tailLog(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // it never wrote a line
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-tailLogBytes)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return nil, err
	}
	raw := strings.Split(string(b), "\n")
	if off > 0 && len(raw) > 0 {
		raw = raw[1:] // cut in the middle
	}
	var lines []string
	var partial strings.Builder
	for _, l := range raw {
		line, ok := ParseLogLine(l)
		if !ok {
			continue
		}
		partial.WriteString(line.Text)
		if line.Partial {
			continue
		}
		lines = append(lines, partial.String())
		partial.Reset()
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// masker masks the values of an app's environment.
type masker struct{ r *redact.Redactor }

// redactor masks the values of env (KEY=VALUE entries).
func redactor(env []string) masker {
	var values []string
	for _, kv := range env {
		if _, v, ok := strings.Cut(kv, "="); ok {
			values = append(values, v)
		}
	}
	return masker{redact.New(values...)}
}

// maskerOf masks the values of the container's environment that came
// from its Spec.Env (named by LabelEnvKeys), not the image's own.
func maskerOf(c *container) masker {
	keys := strings.Split(c.Config.Labels[LabelEnvKeys], ",")
	var env []string
	for _, kv := range c.Config.Env {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(keys, k) {
			env = append(env, kv)
		}
	}
	return redactor(env)
}

func (m masker) mask(s string) string { return m.r.Redact(s) }

// fail returns err with every env value masked (its chain is lost: its
// text is what may hold a value).
func (m masker) fail(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(m.mask(err.Error()))
}
