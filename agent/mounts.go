package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/slipway-ci/slipway"
)

// checkMounts refuses the RUN --mount options of a Dockerfile that would
// let a build read the builder's own disk. Podman 4.3 (buildah 1.28)
// follows symbolic links in a mount's source on the host (CVE-2024-1753):
//
//   - a bind mount (the default type) of a path in the build context that
//     is, or goes through, a symlink out of the context mounts the host's
//     file or directory (a link to /etc/passwd, to /);
//   - a bind or cache mount from= a stage or image mounts whatever a
//     symlink in that image points to on the host, and an image's content
//     cannot be checked before it is built.
//
// COPY and ADD are not affected (buildah resolves their sources inside the
// context or image), nor are cache mounts without from=, tmpfs, secret and
// ssh mounts. contextDir is the context's real path (symlinks resolved).
func checkMounts(dockerfile []byte, contextDir string) error {
	// Every "--mount=" token, wherever it is: a Dockerfile's escape
	// directive can continue lines with another character than "\".
	for _, line := range logicalLines(dockerfile) {
		for _, tok := range strings.Fields(line) {
			flag := strings.Trim(tok, `"'`)
			spec, ok := strings.CutPrefix(flag, "--mount=")
			if !ok {
				continue
			}
			if err := checkMount(strings.Trim(spec, `"'`), contextDir); err != nil {
				return slipway.Errorf(slipway.EINVALID, "the Dockerfile's RUN --mount=%s is refused: %s", strings.Trim(spec, `"'`), err)
			}
		}
	}
	return nil
}

func checkMount(spec, contextDir string) error {
	if strings.ContainsAny(spec, `"'`) {
		return errors.New("quoted mount options cannot be checked before the build; write them unquoted")
	}
	opts := map[string]string{}
	for _, part := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(part, "=")
		opts[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	typ := strings.ToLower(opts["type"])
	if typ == "" {
		typ = "bind"
	}
	source := opts["source"]
	if source == "" {
		source = opts["src"]
	}
	if strings.Contains(typ+opts["from"]+source, "$") {
		return errors.New("its type, from or source uses a build argument, so it cannot be checked before the build")
	}
	switch typ {
	case "bind", "cache":
	default:
		return nil
	}
	if opts["from"] != "" {
		return fmt.Errorf("a %s mount from another stage or image could follow a symlink in it out to the builder's disk with this podman (CVE-2024-1753); COPY --from=%s what the step needs instead", typ, opts["from"])
	}
	if typ != "bind" {
		return nil
	}
	// Buildah resolves the source against the context like an absolute
	// path inside it ("../.." stays the context), but follows symlinks as
	// the host sees them.
	p := filepath.Join(contextDir, filepath.Clean("/"+source))
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // podman fails the step itself: nothing to mount
	} else if err != nil {
		return fmt.Errorf("its source %q cannot be resolved: %v", source, err)
	}
	if real != contextDir && !strings.HasPrefix(real, contextDir+string(os.PathSeparator)) {
		return fmt.Errorf("its source %q is a symlink (or goes through one) that points outside the build context", source)
	}
	return nil
}

// copierRequestRE and copierLstatRE match what buildah says when COPY or
// ADD meets a symlink it will not follow out of the context or image.
var (
	copierRequestRE = regexp.MustCompile(`error during bulk transfer for copier\.request\{.*\}: (copier: )`)
	copierLstatRE   = regexp.MustCompile(`copier: (?:get|stat): lstat "([^"]*)"\("([^"]*)"\)`)
)

// clarifyCopyError shortens buildah's message for a COPY or ADD of a
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

// outwardCopySource names the source of a failed COPY or ADD step (step as
// podman prints it, "STEP n/m: COPY a b /dst") that is a symlink out of
// contextDir, the way clarifyCopyError does: buildah's own message for it
// varies (rootless, its copier subprocess may only report a broken pipe).
// It returns "" when the step is no such COPY or ADD.
func outwardCopySource(step, contextDir string) string {
	_, instr, ok := strings.Cut(step, ": ")
	if !ok {
		return ""
	}
	f := strings.Fields(instr)
	if len(f) < 3 || (!strings.EqualFold(f[0], "COPY") && !strings.EqualFold(f[0], "ADD")) {
		return ""
	}
	for _, src := range f[1 : len(f)-1] {
		if strings.HasPrefix(src, "--") {
			if strings.HasPrefix(src, "--from") {
				return ""
			}
			continue
		}
		p := filepath.Join(contextDir, filepath.Clean("/"+src))
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			if target, lerr := os.Readlink(p); lerr == nil {
				real = target
			} else {
				continue
			}
		}
		if real != contextDir && !strings.HasPrefix(real, contextDir+string(os.PathSeparator)) {
			return fmt.Sprintf(" (%s is a symlink to %s, outside the build context: a build only sees the files inside its context)", strings.TrimPrefix(filepath.Clean("/"+src), "/"), real)
		}
	}
	return ""
}
