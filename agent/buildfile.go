package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/openshift/imagebuilder"
	"go.podman.io/storage/pkg/fileutils"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/dockerfile"
)

// A build's Dockerfile is read once, by package dockerfile (the builder's
// own parser and evaluator), into a buildFile; every decision the agent
// takes from it (policy, inputs key, step keys, the config-only tail,
// step numbering) reads that.

// buildFile is a build's Dockerfile as the builder will read it, with what
// the reading needed from outside.
type buildFile struct {
	*dockerfile.File
	// path is the Dockerfile's real path, contextDir the context's.
	path, contextDir string
	// ignoreFile is the ignore file the build uses (passed to the builder
	// with --ignorefile), "" for none; excludes are its patterns.
	ignoreFile string
	excludes   []string
	// format is the image format the build needs: "docker" when the
	// Dockerfile uses what only a Docker image config keeps (HEALTHCHECK,
	// SHELL, ONBUILD), otherwise "oci".
	format string
	// images are the external images it reads, resolved.
	images *imageResolver
}

// defaultDockerfiles are the names tried, in order, when a project names no
// Dockerfile: buildah's own defaults.
var defaultDockerfiles = []string{"Containerfile", "Dockerfile"}

// readBuildFile reads the Dockerfile of a checkout at root: contextPath
// and dockerfilePath are the project's settings (relative to the
// checkout; an empty or default dockerfilePath falls back to
// Containerfile/Dockerfile as buildah does). Errors are slipway.Errors a
// user can act on.
func readBuildFile(root, contextPath, dockerfilePath string, buildArgs map[string]string, images *imageResolver) (*buildFile, error) {
	if dockerfilePath == "" || dockerfilePath == "Dockerfile" {
		// A project that names no Dockerfile (or the default name) builds
		// the repository's Dockerfile, or its Containerfile when it has
		// none (buildah tries Containerfile first; a project's default is
		// "Dockerfile", so that one wins here).
		names := []string{"Dockerfile", "Containerfile"}
		if dockerfilePath == "" {
			names = defaultDockerfiles
		}
		dockerfilePath = ""
		for _, name := range names {
			if _, err := os.Lstat(filepath.Join(root, name)); err == nil {
				dockerfilePath = name
				break
			}
		}
		if dockerfilePath == "" {
			return nil, slipway.Errorf(slipway.EINVALID, "the repository has no Dockerfile or Containerfile at its top (set the project's Dockerfile path with slipway project set --dockerfile)")
		}
	}
	contextDir, path, err := resolveBuildPaths(root, contextPath, dockerfilePath)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, slipway.Errorf(slipway.EINVALID, "cannot read the Dockerfile %s: %v", dockerfilePath, err)
	}
	// The format follows from the Dockerfile; the reading depends on it
	// (what a stage keeps of an earlier one): read again in Docker format
	// when the Dockerfile needs it.
	format := "oci"
	var f *dockerfile.File
	for {
		f, err = dockerfile.Parse(src, dockerfile.Options{BuildArgs: buildArgs, BaseConfig: images.config, Format: format})
		if err != nil {
			return nil, slipway.Errorf(slipway.EINVALID, "%s: %v", dockerfilePath, err)
		}
		if format == "docker" || !needsDockerFormat(f) {
			break
		}
		format = "docker"
	}
	bf := &buildFile{File: f, path: path, contextDir: contextDir, images: images, format: format}
	if bf.ignoreFile, bf.excludes, err = ignoreFile(root, contextDir, path); err != nil {
		return nil, err
	}
	return bf, nil
}

// needsDockerFormat reports whether the Dockerfile uses what only a Docker
// image config keeps: HEALTHCHECK, SHELL, ONBUILD (an OCI image drops them,
// with no more than a warning from the builder).
func needsDockerFormat(f *dockerfile.File) bool {
	for _, st := range f.Stages {
		for _, s := range st.Steps {
			switch s.Command {
			case "healthcheck", "shell", "onbuild":
				return true
			}
		}
	}
	return false
}

// ignoreFile finds the ignore file buildah would use for the Dockerfile at
// dockerfile (pkg/parse.ContainerIgnoreFile: DOCKERFILE.dockerignore, else
// DOCKERFILE.containerignore, else the context's .containerignore, else
// its .dockerignore) and reads its patterns with the builder's parser. The
// agent passes the file it found to the builder, so both read the same
// one. An ignore file must be a file inside the checkout at root.
func ignoreFile(root, contextDir, dockerfile string) (string, []string, error) {
	candidates := []string{
		dockerfile + ".dockerignore", dockerfile + ".containerignore",
		filepath.Join(contextDir, ".containerignore"), filepath.Join(contextDir, ".dockerignore"),
	}
	for _, p := range candidates {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", nil, slipway.Errorf(slipway.EINVALID, "the ignore file %s cannot be read: %v", relTo(root, p), err)
		}
		if !inside(root, real) {
			return "", nil, slipway.Errorf(slipway.EINVALID, "the ignore file %s is a symlink that points outside the repository", relTo(root, p))
		}
		if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
			return "", nil, slipway.Errorf(slipway.EINVALID, "the ignore file %s is not a regular file", relTo(root, p))
		}
		excludes, err := imagebuilder.ParseIgnore(real)
		if err != nil {
			return "", nil, slipway.Errorf(slipway.EINVALID, "the ignore file %s: %v", relTo(root, p), err)
		}
		return real, excludes, nil
	}
	return "", nil, nil
}

// inside reports whether path is dir or below it (both clean, absolute).
func inside(dir, path string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// relTo is path relative to root, for messages.
func relTo(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// contextEntry is one file or directory of the build context.
type contextEntry struct {
	rel  string // slash-separated path in the context
	line string // its identity: kind, path, mode, contents or target
}

// contextEntries lists the context's files and directories under dir
// (relative to the context root; "" for all of it) that the ignore
// patterns do not exclude (none when excludes is nil), in lexical order,
// with their identities. The patterns are matched with the builder's own
// matcher, as its copier does.
func contextEntries(contextDir, dir string, excludes []string) ([]contextEntry, error) {
	var pm *fileutils.PatternMatcher
	if len(excludes) > 0 {
		var err error
		if pm, err = fileutils.NewPatternMatcher(excludes); err != nil {
			return nil, fmt.Errorf("ignore file: %w", err)
		}
	}
	start := filepath.Join(contextDir, filepath.FromSlash(dir))
	var out []contextEntry
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == start {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(contextDir, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if pm != nil {
			excluded, err := pm.Matches(rel) //nolint:staticcheck // the copier's own call
			if err != nil {
				return err
			}
			if excluded {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
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

// imageResolver finds the registry digests and configs of the external
// images a build reads, once per build.
type imageResolver struct {
	ctx     context.Context
	resolve func(ctx context.Context, ref string) (digest string, cfg *docker.Config, err error)
	// digests and errs by reference, as resolved.
	digests map[string]string
	configs map[string]*docker.Config
	errs    map[string]error
}

func newImageResolver(ctx context.Context, resolve func(ctx context.Context, ref string) (string, *docker.Config, error)) *imageResolver {
	return &imageResolver{ctx: ctx, resolve: resolve, digests: map[string]string{}, configs: map[string]*docker.Config{}, errs: map[string]error{}}
}

func (r *imageResolver) lookup(ref string) {
	if _, ok := r.digests[ref]; ok {
		return
	}
	if _, ok := r.errs[ref]; ok {
		return
	}
	if r.resolve == nil {
		r.errs[ref] = errors.New("no registry to ask")
		return
	}
	d, cfg, err := r.resolve(r.ctx, ref)
	if err == nil && d == "" {
		err = errors.New("no digest")
	}
	if err != nil {
		r.errs[ref] = err
		return
	}
	r.digests[ref], r.configs[ref] = d, cfg
}

// config is dockerfile.Options.BaseConfig.
func (r *imageResolver) config(ref string) *docker.Config {
	r.lookup(ref)
	return r.configs[ref]
}

// digest returns the image's manifest digest, or why it has none.
func (r *imageResolver) digest(ref string) (string, error) {
	r.lookup(ref)
	if err := r.errs[ref]; err != nil {
		return "", err
	}
	return r.digests[ref], nil
}
