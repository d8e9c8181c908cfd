package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/openshift/imagebuilder"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/dockerfile"
)

// The build policy: what a Dockerfile may ask of the builder, checked on
// the Dockerfile as the builder reads it (buildFile), before the build
// starts. The builder (buildah ≥ 1.35) resolves bind and cache mount
// sources inside the context or image it mounts from (CVE-2024-1753
// fixed) and COPY/ADD sources inside the context; this is a second line
// of defence, and it says clearly what was refused and on which line:
//
//   - RUN --network=host (the host's network: the control plane's services
//     on loopback) and any network but the build's own or none;
//   - mount types other than bind, cache, tmpfs and secret;
//   - a mount that names an option twice (source=. and src=link: buildah
//     takes the last, a reader taking the first would see another mount),
//     or whose option names differ from buildah's only in case;
//   - a bind mount of the context whose source is, or goes through, a
//     symlink that leads outside the build context;
//   - a COPY or ADD from the context whose source path is, or goes
//     through, a symlink that leads outside the build context.
//
// Mounts are read as buildah's run mounts read them
// (run_common.go runSetupRunMounts, internal/volumes): the flag's value
// split at commas, the type from any "type=" field, each "key=value" or
// bare flag after it, the last value of a key winning.

// mountTypes are the RUN --mount types a build may use.
var mountTypes = map[string]bool{"bind": true, "cache": true, "tmpfs": true, "secret": true}

// mountKeyAliases groups the option names buildah treats as one.
var mountKeyAliases = map[string]string{
	"type": "type", "from": "from",
	"source": "source", "src": "source",
	"target": "target", "dst": "target", "destination": "target",
}

// runMount is one RUN --mount as buildah reads it.
type runMount struct {
	raw    string
	typ    string
	from   string
	source string
	target string
}

// parseRunMount reads a mount as buildah does and refuses the spellings
// whose reading depends on who reads them.
func parseRunMount(raw string) (runMount, error) {
	m := runMount{raw: raw, typ: "bind"}
	seen := map[string]string{}
	for _, field := range strings.Split(raw, ",") {
		name, value, _ := strings.Cut(field, "=")
		canon, known := mountKeyAliases[name]
		if !known {
			if c, ok := mountKeyAliases[strings.ToLower(strings.TrimSpace(name))]; ok {
				return m, fmt.Errorf("option %q is spelled differently from %q; write option names in lower case without spaces", name, c)
			}
			continue
		}
		if prev, dup := seen[canon]; dup {
			return m, fmt.Errorf("it names its %s twice (%s and %s); name it once", canon, prev, field)
		}
		seen[canon] = field
		switch canon {
		case "type":
			if strings.Count(field, "=") != 1 {
				return m, fmt.Errorf("invalid mount type %q", field)
			}
			m.typ = value
		case "from":
			m.from = value
		case "source":
			m.source = value
		case "target":
			m.target = value
		}
	}
	return m, nil
}

// checkPolicy refuses what the build policy does not allow (see above).
func checkPolicy(bf *buildFile) error {
	for _, st := range bf.Stages {
		for _, s := range st.Steps {
			if err := checkStep(bf, st, s); err != nil {
				line := s.StartLine
				where := fmt.Sprintf("line %d", line)
				if line == 0 {
					where = "an ONBUILD trigger of " + st.Base
				}
				return slipway.Errorf(slipway.EINVALID, "the Dockerfile's %s (%s) is refused: %v", where, clip(s.Original, 160), err)
			}
		}
	}
	return nil
}

func checkStep(bf *buildFile, st *dockerfile.Stage, s *dockerfile.Step) error {
	for _, r := range s.Runs {
		switch r.Network {
		case "", "default", "none":
		case "host":
			return errors.New("RUN --network=host would run the step on the builder's own network, next to the control plane's services; use the default network or --network=none")
		default:
			return fmt.Errorf("RUN --network=%s: only the default network and none are allowed", r.Network)
		}
		for _, raw := range r.Mounts {
			m, err := parseRunMount(raw)
			if err != nil {
				return fmt.Errorf("RUN --mount=%s: %v", raw, err)
			}
			if !mountTypes[m.typ] {
				return fmt.Errorf("RUN --mount=%s: mounts of type %q are not allowed (bind, cache, tmpfs and secret are)", raw, m.typ)
			}
			if m.typ != "bind" || m.from != "" {
				// Cache sources, and bind sources in a stage or image, are
				// resolved inside what they mount by the builder.
				continue
			}
			if err := checkContextPath(bf.contextDir, m.source); err != nil {
				return fmt.Errorf("RUN --mount=%s: its source %v", raw, err)
			}
		}
	}
	for _, c := range s.Copies {
		if c.From != "" {
			continue
		}
		for _, src := range c.Src {
			if isHeredocSource(src, c) || c.Download && isRemoteSource(src) {
				continue
			}
			if err := checkContextPath(bf.contextDir, literalPrefix(src)); err != nil {
				return fmt.Errorf("%s source %v", strings.ToUpper(s.Command), err)
			}
		}
	}
	return nil
}

// isHeredocSource reports whether src is a heredoc of the COPY/ADD (its
// content is in the Dockerfile), as buildah's stage executor tells them
// apart.
func isHeredocSource(src string, c imagebuilder.Copy) bool {
	return len(c.Files) > 0 && strings.HasPrefix(src, "<<")
}

// isRemoteSource reports whether an ADD source is fetched from elsewhere
// (a URL or a git repository) rather than taken from the context.
func isRemoteSource(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git@")
}

// remoteAdd reports whether a COPY/ADD fetches a source from elsewhere.
func remoteAdd(c imagebuilder.Copy) bool {
	return c.Download && slices.ContainsFunc(c.Src, isRemoteSource)
}

// globMeta matches the first character from which a COPY source is a
// pattern.
var globMeta = regexp.MustCompile(`[*?\[\\]`)

// literalPrefix is the part of a COPY source before its first pattern
// character, cut back to a whole path element.
func literalPrefix(src string) string {
	i := globMeta.FindStringIndex(src)
	if i == nil {
		return src
	}
	return src[:strings.LastIndex(src[:i[0]], "/")+1]
}

// checkContextPath refuses a path of the build context (as the builder
// resolves it: relative to the context, ".." never above it) that is, or
// goes through, a symlink leading outside the context when followed on
// this machine. A path that does not exist is left to the builder, which
// fails the step.
func checkContextPath(contextDir, p string) error {
	cur := contextDir
	rel := strings.Trim(filepath.Clean("/"+p), "/")
	if rel == "" {
		return nil
	}
	for _, elem := range strings.Split(rel, "/") {
		next := filepath.Join(cur, elem)
		fi, err := os.Lstat(next)
		if err != nil {
			return nil
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		target, err := os.Readlink(next)
		if err != nil {
			return fmt.Errorf("%q cannot be read: %v", p, err)
		}
		resolved := target
		if !filepath.IsAbs(target) {
			resolved = filepath.Join(cur, target)
		}
		real, err := filepath.EvalSymlinks(resolved)
		if err != nil {
			real = filepath.Clean(resolved)
		}
		if !inside(contextDir, real) {
			return fmt.Errorf("%q goes through %s, a symlink to %s, which points outside the repository", p, relTo(contextDir, next), target)
		}
		cur = real
	}
	return nil
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// copierRequestRE and copierLstatRE match what the builder says when COPY
// or ADD meets a symlink it will not follow out of the context or image.
var (
	copierRequestRE = regexp.MustCompile(`error during bulk transfer for copier\.request\{.*\}: (copier: )`)
	copierLstatRE   = regexp.MustCompile(`copier: (?:get|stat): lstat "([^"]*)"\("([^"]*)"\)`)
)

// clarifyCopyError shortens the builder's message for a COPY or ADD of a
// symlink that points out of the build context (it prints its whole
// internal request) and says what happened: the build only sees the
// context, so the link's target does not exist for it.
func clarifyCopyError(msg string) string {
	msg = copierRequestRE.ReplaceAllString(msg, "$1")
	if m := copierLstatRE.FindStringSubmatch(msg); m != nil {
		msg += fmt.Sprintf(" (%s is a symlink to %s, outside the build context: a build only sees the files inside its context)", strings.TrimPrefix(m[1], "/"), m[2])
	}
	return msg
}
