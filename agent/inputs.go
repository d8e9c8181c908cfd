package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
)

// A build whose inputs are identical to an earlier successful build's
// reuses that build's image without running the Dockerfile again. The
// inputs are: the Dockerfile, the image format, the build arguments, the
// identity of the secrets, the digests of the images the Dockerfile reads
// (FROM, COPY --from, RUN --mount from=), the build context after the
// ignore file (paths, modes, contents, symlink targets) and, for a RUN
// that bind-mounts the context, everything under the mounted path (the
// ignore file does not apply to mounts). This is the assumption the
// builder's layer cache makes too (a RUN step with the same inputs is not
// re-run); inputs that can change behind our back (ADD of a URL without a
// checksum, an image whose digest cannot be resolved) disable the
// shortcut.

// buildInputs is what a build reads, as far as it can be pinned down.
type buildInputs struct {
	// key identifies all of it; "" when it cannot be pinned down, and why
	// says why.
	key, why string
	// entries is the build context after the ignore file; read is false
	// when it could not be read (why says why).
	entries []contextEntry
	read    bool
}

// readInputs identifies a build's inputs.
func (bf *buildFile) readInputs(buildArgs, secretDigests map[string]string) buildInputs {
	entries, err := contextEntries(bf.contextDir, "", bf.excludes)
	if err != nil {
		return buildInputs{why: fmt.Sprintf("the build context cannot be read: %v", err)}
	}
	in := buildInputs{entries: entries, read: true}
	h := sha256.New()
	fmt.Fprintf(h, "slipway-inputs-v2\nformat %s\ndockerfile %d\n", bf.format, len(bf.Source))
	h.Write(bf.Source)
	fmt.Fprintf(h, "ignore %q\n", bf.excludes)
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		fmt.Fprintf(h, "arg %q %q\n", k, buildArgs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(secretDigests)) {
		fmt.Fprintf(h, "secret %q %s\n", k, secretDigests[k])
	}
	// What the steps read from outside the context (images, URLs) and
	// under bind mounts: the step keys' own reading of it.
	k := &keyer{bf: bf, entries: entries, secretDigests: secretDigests, bindCache: map[string]string{}}
	for s, st := range bf.Stages {
		if st.BaseStage < 0 && !st.IsScratch() {
			d, err := bf.images.digest(st.Base)
			if err != nil {
				return buildInputs{why: fmt.Sprintf("the image %s cannot be resolved: %v", st.Base, err), entries: entries, read: true}
			}
			fmt.Fprintf(h, "image %s %s\n", st.Base, d)
		}
		for i, step := range st.Steps {
			var why string
			switch step.Command {
			case "copy", "add":
				for _, c := range step.Copies {
					if remoteAdd(c) && c.Checksum == "" {
						why = "ADD of a URL without --checksum"
					} else if c.From != "" && bf.StageIndex(c.From, s) < 0 {
						why = k.image(h, c.From)
					}
				}
			case "run":
				for _, r := range step.Runs {
					for _, raw := range r.Mounts {
						m, err := parseRunMount(raw)
						if err != nil {
							why = err.Error()
						} else if m.from != "" && bf.StageIndex(m.from, s) < 0 {
							why = k.image(h, m.from)
						} else if m.typ == "bind" && m.from == "" {
							id, err := k.bindSource(m.source)
							if err != nil {
								why = err.Error()
							}
							fmt.Fprintf(h, "bind %q %s\n", m.source, id)
						}
					}
				}
			}
			if why != "" {
				return buildInputs{why: fmt.Sprintf("step %d of stage %d: %s", i+1, s+1, why), entries: entries, read: true}
			}
		}
	}
	for _, e := range entries {
		io.WriteString(h, e.line)
	}
	in.key = hex.EncodeToString(h.Sum(nil))
	return in
}

// image writes an external image's digest, or says why it has none.
func (k *keyer) image(h io.Writer, ref string) string {
	d, err := k.bf.images.digest(ref)
	if err != nil {
		return fmt.Sprintf("the image %s cannot be resolved: %v", ref, err)
	}
	fmt.Fprintf(h, "image %s %s\n", ref, d)
	return ""
}
