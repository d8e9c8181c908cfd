package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// A build whose inputs are identical to an earlier successful build's
// reuses that build's image without running the Dockerfile again. The
// inputs are: the Dockerfile, the build context after .dockerignore (paths,
// modes, contents, symlink targets), the build arguments, the identity of
// the secrets, and the digests of the images the Dockerfile starts FROM or
// copies from. This is the assumption podman's layer cache makes too (a RUN
// step with the same inputs is not re-run); inputs that can change behind
// our back (ADD of a URL, FROM with a variable) disable the shortcut.

// resolveDigest returns the manifest digest an image reference currently
// points to.
type resolveDigest func(ctx context.Context, ref string) (string, error)

// buildInputs is what a build reads, as far as it can be pinned down.
type buildInputs struct {
	// key identifies all of it; "" when it cannot be pinned down, and why
	// says why.
	key, why string
	// digests are the manifest digests of the external images.
	digests map[string]string
	// entries is the build context after .dockerignore.
	entries []contextEntry
}

// readInputs identifies a build's inputs: the Dockerfile (its path, for
// the .dockerignore beside it, and its contents df), the context, the
// build arguments, the secrets' digests and the external images' digests.
func readInputs(ctx context.Context, contextDir, dockerfile string, df []byte, buildArgs, secretDigests map[string]string, resolve resolveDigest) buildInputs {
	fail := func(why string) buildInputs { return buildInputs{why: why} }
	refs, why := externalImages(df)
	if why != "" {
		return fail(why)
	}
	in := buildInputs{digests: map[string]string{}}
	h := sha256.New()
	fmt.Fprintf(h, "slipway-inputs-v1\ndockerfile %d\n", len(df))
	h.Write(df)
	for _, ref := range refs {
		digest, err := resolve(ctx, ref)
		if err != nil || digest == "" {
			return fail(fmt.Sprintf("cannot resolve image %s: %v", ref, err))
		}
		in.digests[ref] = digest
		fmt.Fprintf(h, "image %s %s\n", ref, digest)
	}
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		fmt.Fprintf(h, "arg %q %q\n", k, buildArgs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(secretDigests)) {
		fmt.Fprintf(h, "secret %q %s\n", k, secretDigests[k])
	}
	var err error
	if in.entries, err = contextEntries(contextDir, dockerfile); err != nil {
		return fail(err.Error())
	}
	for _, e := range in.entries {
		io.WriteString(h, e.line)
	}
	in.key = hex.EncodeToString(h.Sum(nil))
	return in
}

// externalImages lists the images a Dockerfile pulls (FROM, COPY --from,
// RUN --mount from=) that are not its own stages. It gives a reason instead
// when the Dockerfile's inputs cannot be pinned down.
func externalImages(df []byte) ([]string, string) {
	stages := map[string]bool{}
	var refs []string
	add := func(ref string) string {
		if strings.Contains(ref, "$") {
			return fmt.Sprintf("image %q depends on a build argument", ref)
		}
		l := strings.ToLower(ref)
		if stages[l] || l == "scratch" || isNumber(l) {
			return ""
		}
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
		return ""
	}
	for _, line := range logicalLines(df) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			args := withoutFlags(fields[1:])
			if len(args) == 0 {
				return nil, "a FROM line without an image"
			}
			if why := add(args[0]); why != "" {
				return nil, why
			}
			if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
				stages[strings.ToLower(args[2])] = true
			}
		case "ADD":
			for _, a := range fields[1:] {
				if strings.Contains(a, "://") || strings.HasPrefix(a, "git@") {
					return nil, "ADD of a remote source"
				}
			}
			fallthrough
		case "COPY", "RUN":
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") {
					break
				}
				for _, part := range strings.Split(strings.TrimPrefix(f, "--"), ",") {
					if v, ok := strings.CutPrefix(part, "from="); ok {
						if why := add(v); why != "" {
							return nil, why
						}
					}
				}
			}
		}
	}
	return refs, ""
}

func isNumber(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

func withoutFlags(args []string) []string {
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		args = args[1:]
	}
	return args
}

// logicalLines returns a Dockerfile's instructions, continued lines
// joined, comments dropped (dockerfileLines).
func logicalLines(df []byte) []string {
	var out []string
	for l := range dockerfileLines(df) {
		if l.text != "" {
			out = append(out, l.text)
		}
	}
	return out
}

// dfLine is one logical line of a Dockerfile: an instruction, or a blank
// or comment line between instructions (text "").
type dfLine struct {
	raw  []string // the physical lines, as written
	text string   // the instruction, its lines trimmed and joined by a space
	open bool     // the file ended in the instruction's continuation
}

// dockerfileLines reads a Dockerfile the way podman's parser does: a line
// ending in a backslash continues on the next; comment and blank lines
// inside a continuation are skipped.
func dockerfileLines(df []byte) iter.Seq[dfLine] {
	return func(yield func(dfLine) bool) {
		sc := bufio.NewScanner(bytes.NewReader(df))
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		var raw, parts []string
		for sc.Scan() {
			line := sc.Text()
			trimmed := strings.TrimSpace(line)
			blankOrComment := trimmed == "" || strings.HasPrefix(trimmed, "#")
			if len(raw) == 0 && blankOrComment {
				if !yield(dfLine{raw: []string{line}}) {
					return
				}
				continue
			}
			raw = append(raw, line)
			if blankOrComment {
				continue
			}
			if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
				parts = append(parts, strings.TrimSpace(s))
				continue
			}
			parts = append(parts, trimmed)
			if !yield(dfLine{raw: raw, text: joinParts(parts)}) {
				return
			}
			raw, parts = nil, nil
		}
		if len(raw) > 0 {
			yield(dfLine{raw: raw, text: joinParts(parts), open: true})
		}
	}
}

func joinParts(parts []string) string {
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), " ")
}

// contextEntry is one file or directory of the build context.
type contextEntry struct {
	rel  string // slash-separated path in the context
	line string // its identity: kind, path, mode, contents or target
}

// contextEntries lists the build context's files and directories not
// excluded by .dockerignore, in lexical order, with their identities.
func contextEntries(dir, dockerfile string) ([]contextEntry, error) {
	var patterns []string
	for _, name := range []string{dockerfile + ".dockerignore", filepath.Join(dir, ".dockerignore")} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		break
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	var out []contextEntry
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ignored, err := pm.MatchesOrParentMatches(rel); err != nil {
			return err
		} else if ignored && !pm.Exclusions() {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		} else if ignored {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var line string
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			line = fmt.Sprintf("link %q %q\n", rel, target)
		case d.IsDir():
			line = fmt.Sprintf("dir %q %o\n", rel, info.Mode().Perm())
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			line = fmt.Sprintf("file %q %o %x\n", rel, info.Mode().Perm(), fh.Sum(nil))
		default:
			line = fmt.Sprintf("other %q %s\n", rel, info.Mode())
		}
		out = append(out, contextEntry{rel: rel, line: line})
		return nil
	})
	return out, err
}
