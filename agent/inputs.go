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

// inputKey returns the key of a build's inputs, or "" and the reason it
// cannot be computed.
func inputKey(ctx context.Context, contextDir, dockerfile string, buildArgs, secretDigests map[string]string, resolve resolveDigest) (string, string) {
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", err.Error()
	}
	refs, why := externalImages(df)
	if why != "" {
		return "", why
	}
	h := sha256.New()
	fmt.Fprintf(h, "slipway-inputs-v1\ndockerfile %d\n", len(df))
	h.Write(df)
	for _, ref := range refs {
		digest, err := resolve(ctx, ref)
		if err != nil || digest == "" {
			return "", fmt.Sprintf("cannot resolve image %s: %v", ref, err)
		}
		fmt.Fprintf(h, "image %s %s\n", ref, digest)
	}
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		fmt.Fprintf(h, "arg %q %q\n", k, buildArgs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(secretDigests)) {
		fmt.Fprintf(h, "secret %q %s\n", k, secretDigests[k])
	}
	if err := hashContext(h, contextDir, dockerfile); err != nil {
		return "", err.Error()
	}
	return hex.EncodeToString(h.Sum(nil)), ""
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

// logicalLines joins a Dockerfile's continued lines and drops comments.
func logicalLines(df []byte) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(df))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// hashContext writes the build context's identity to h: every file and
// directory not excluded by .dockerignore, in lexical order.
func hashContext(h io.Writer, dir, dockerfile string) error {
	var patterns []string
	for _, name := range []string{dockerfile + ".dockerignore", filepath.Join(dir, ".dockerignore")} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		break
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link %q %q\n", rel, target)
		case d.IsDir():
			fmt.Fprintf(h, "dir %q %o\n", rel, info.Mode().Perm())
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
			fmt.Fprintf(h, "file %q %o %x\n", rel, info.Mode().Perm(), fh.Sum(nil))
		default:
			fmt.Fprintf(h, "other %q %s\n", rel, info.Mode())
		}
		return nil
	})
}
