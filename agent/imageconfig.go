package agent

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Config-only steps. The instructions a Dockerfile usually ends with
// (EXPOSE, USER, CMD, ENTRYPOINT, LABEL, ENV, STOPSIGNAL) change only the
// image's config, but podman 4.3 commits an image for each of them once
// an earlier step changed: on the bench app's source change EXPOSE, USER
// and CMD cost a second of commits. When the final stage ends with such
// instructions, and each is one applyConfig reproduces exactly (no
// variables, no quoting beyond plain double quotes), the agent builds the
// Dockerfile without them and applies them to the pushed image's config in
// the registry, next to the deployment's labels: one new config and
// manifest, the same layers, the same config podman would have written
// (TestConfigStepsMatchTheBuilder compares the two).

var (
	exposePort = regexp.MustCompile(`^[0-9]{1,5}(/(tcp|udp|sctp))?$`)
	signalName = regexp.MustCompile(`^(SIG[A-Z0-9+-]+|[0-9]{1,2})$`)
)

// configTail returns the trailing instructions of the final stage that
// applyConfig can apply in place of podman (their text as parsed).
func (d *dockerfileStages) configTail() []string {
	insts := d.stages[len(d.stages)-1].insts
	start := len(insts)
	for start > 1 && len(insts[start-1].raw) == 1 && configOnly(insts[start-1].text) {
		start--
	}
	// ENTRYPOINT clears an inherited CMD unless a CMD came earlier in the
	// stage, which applyConfig only knows of when it is in the tail.
	isCmd := func(in dfInstruction) bool { return in.keyword == "CMD" }
	for i := start; i < len(insts); i++ {
		if isCmd(insts[i]) {
			break
		}
		if insts[i].keyword == "ENTRYPOINT" && slices.ContainsFunc(insts[:start], isCmd) {
			start = i + 1
		}
	}
	var out []string
	for _, in := range insts[start:] {
		out = append(out, in.text)
	}
	return out
}

// configOnly reports whether instruction text changes only the image
// config and applyConfig reproduces podman's reading of it.
func configOnly(text string) bool {
	if strings.ContainsAny(text, "$\\'`") {
		return false
	}
	return applyInstruction(&v1.Config{}, new(bool), text) == nil
}

// applyConfig applies config-only instructions (configTail) to cf as
// podman's build would have: the config changes, a history entry per
// instruction, the creation time.
func applyConfig(cf *v1.ConfigFile, insts []string, now time.Time) error {
	cmdSet := false
	for _, text := range insts {
		if err := applyInstruction(&cf.Config, &cmdSet, text); err != nil {
			return err
		}
		cf.History = append(cf.History, v1.History{Created: v1.Time{Time: now}, CreatedBy: "/bin/sh -c #(nop) " + text, EmptyLayer: true})
	}
	if len(insts) > 0 {
		cf.Created = v1.Time{Time: now}
	}
	return nil
}

// applyInstruction applies one instruction to c; cmdSet tracks whether a
// CMD came earlier (an ENTRYPOINT clears the command otherwise).
func applyInstruction(c *v1.Config, cmdSet *bool, text string) error {
	keyword, rest, _ := strings.Cut(strings.TrimSpace(text), " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToUpper(keyword) {
	case "EXPOSE":
		ports := strings.Fields(rest)
		if len(ports) == 0 {
			return fmt.Errorf("EXPOSE without ports")
		}
		for _, p := range ports {
			if !exposePort.MatchString(p) {
				return fmt.Errorf("EXPOSE %q", p)
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			c.ExposedPorts[p] = struct{}{}
		}
	case "USER":
		if f := strings.Fields(rest); len(f) != 1 || strings.Contains(rest, `"`) {
			return fmt.Errorf("USER %q", rest)
		}
		c.User = rest
	case "STOPSIGNAL":
		if !signalName.MatchString(rest) {
			return fmt.Errorf("STOPSIGNAL %q", rest)
		}
		c.StopSignal = rest
	case "CMD", "ENTRYPOINT":
		args, exec := commandArgs(rest)
		if args == nil {
			return fmt.Errorf("%s %q", keyword, rest)
		}
		if !exec {
			args = []string{"/bin/sh", "-c", rest}
		}
		if strings.EqualFold(keyword, "CMD") {
			c.Cmd = args
			*cmdSet = true
			break
		}
		c.Entrypoint = args
		if !*cmdSet {
			c.Cmd = nil
		}
	case "ENV", "LABEL":
		pairs, err := keyValues(rest)
		if err != nil {
			return fmt.Errorf("%s: %w", keyword, err)
		}
		for _, kv := range pairs {
			if strings.EqualFold(keyword, "LABEL") {
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[kv[0]] = kv[1]
				continue
			}
			i := slices.IndexFunc(c.Env, func(e string) bool { return strings.HasPrefix(e, kv[0]+"=") })
			if i >= 0 {
				c.Env[i] = kv[0] + "=" + kv[1]
			} else {
				c.Env = append(c.Env, kv[0]+"="+kv[1])
			}
		}
	default:
		return fmt.Errorf("%s is not a config-only instruction", keyword)
	}
	return nil
}

// commandArgs reads a CMD or ENTRYPOINT: the exec (JSON) form's strings,
// or the shell form (exec false). nil when neither reads cleanly.
func commandArgs(rest string) (args []string, exec bool) {
	if strings.HasPrefix(rest, "[") {
		var a []string
		if json.Unmarshal([]byte(rest), &a) != nil {
			return nil, false // podman would run it as a shell command
		}
		if len(a) == 0 {
			return nil, false
		}
		return a, true
	}
	if rest == "" || strings.Contains(rest, `"`) {
		return nil, false
	}
	return []string{}, false
}

// keyValues reads ENV's and LABEL's key=value pairs; a key or a value may
// be in double quotes (no escapes inside). The legacy "ENV key value"
// form is not read.
func keyValues(rest string) ([][2]string, error) {
	var out [][2]string
	for rest != "" {
		tok, n, err := word(rest)
		if err != nil {
			return nil, err
		}
		rest = strings.TrimLeft(rest[n:], " \t")
		k, v, ok := strings.Cut(tok, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", tok)
		}
		out = append(out, [2]string{k, v})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no key=value")
	}
	return out, nil
}

// word reads one whitespace-separated word of s with its double quotes
// removed, and how much of s it took.
func word(s string) (string, int, error) {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"':
			quoted = !quoted
		case (ch == ' ' || ch == '\t') && !quoted:
			return b.String(), i, nil
		default:
			b.WriteByte(ch)
		}
	}
	if quoted {
		return "", 0, fmt.Errorf("unterminated quote in %q", s)
	}
	return b.String(), len(s), nil
}
