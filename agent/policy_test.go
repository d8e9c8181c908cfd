package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	docker "github.com/fsouza/go-dockerclient"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// fakeDigests resolves every image with a registry host to a digest made
// from its name (and the configs given); others cannot be resolved.
func fakeDigests(configs map[string]*docker.Config) func(context.Context, string) (string, *docker.Config, error) {
	return func(_ context.Context, ref string) (string, *docker.Config, error) {
		host, _, ok := strings.Cut(ref, "/")
		if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
			return "", nil, fmt.Errorf("%s names no registry host", ref)
		}
		return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ref))), configs[ref], nil
	}
}

// testBuildFile writes df as the Dockerfile of the checkout at dir and
// reads it as Build does.
func testBuildFile(t *testing.T, dir, df string, buildArgs map[string]string) (*buildFile, error) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return readBuildFile(dir, "", "Dockerfile", buildArgs, newImageResolver(t.Context(), fakeDigests(nil)))
}

// hostileContext makes a checkout with symlinks out of it, and returns its
// real path.
func hostileContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"sub/package.json": "{}", "deep/er/file": "x"})
	for name, target := range map[string]string{
		"etc":          "/etc",
		"root":         "/",
		"passwd":       "/etc/passwd",
		"up":           "../../../../../..",
		"inside":       "sub",
		"deep/er/back": "../../sub",
		"deep/out":     "../../..",
		"chain":        "up/etc",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// TestPolicy reads Dockerfiles as the builder would and checks what the
// build policy refuses, among them spellings that read differently to a
// second parser than to buildah (continued lines, repeated and aliased
// keys, build arguments, quotes, another escape character).
func TestPolicy(t *testing.T) {
	ctx := hostileContext(t)
	tests := []struct {
		name, df string
		args     map[string]string
		wantErr  string // "" means allowed
	}{
		{"cache mount", "RUN --mount=type=cache,target=/root/.npm npm ci", nil, ""},
		{"bind of a file", "RUN --mount=type=bind,source=sub/package.json,target=/app/package.json npm ci", nil, ""},
		{"bind of the context", "RUN --mount=type=bind,target=/src ls /src", nil, ""},
		{"bind of / is the context", "RUN --mount=type=bind,source=/,target=/src ls /src", nil, ""},
		{"bind of .. is the context", "RUN --mount=type=bind,source=../..,target=/src ls /src", nil, ""},
		{"bind through a symlink inside", "RUN --mount=type=bind,source=inside,target=/src ls /src", nil, ""},
		{"bind through a relative symlink inside", "RUN --mount=type=bind,source=deep/er/back/package.json,target=/p cat /p", nil, ""},
		{"bind of a missing path", "RUN --mount=type=bind,source=missing,target=/m true", nil, ""},
		{"secret", "RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci", nil, ""},
		{"tmpfs", "RUN --mount=type=tmpfs,target=/tmp true", nil, ""},
		{"cache with a source", "RUN --mount=type=cache,id=x,source=etc,target=/m true", nil, ""},
		{"bind from a stage", "RUN --mount=type=bind,from=base,source=/etc,target=/m ls /m", nil, ""},
		{"network none", "RUN --network=none true", nil, ""},
		{"copy of a glob", "COPY * /app/", nil, ""},
		{"copy of the context", "COPY . /app/", nil, ""},
		{"copy heredoc", "COPY <<EOF /etc/x\nhello\nEOF", nil, ""},

		{"bind of a link to a file", "RUN --mount=type=bind,source=passwd,target=/m cat /m", nil, "points outside the repository"},
		{"bind without a type", "RUN --mount=source=passwd,target=/m cat /m", nil, "points outside the repository"},
		{"src alias", "RUN --mount=type=bind,src=etc/hostname,target=/m cat /m", nil, "points outside the repository"},
		{"through a climbing link", "RUN --mount=type=bind,source=up/etc,target=/m ls /m", nil, "points outside the repository"},
		{"link to /", "RUN --mount=type=bind,source=root,target=/h,rw cat /h/etc/os-release", nil, "points outside the repository"},
		{"a chain of links", "RUN --mount=type=bind,source=chain,target=/m ls /m", nil, "points outside the repository"},
		{"a nested link climbing out", "RUN --mount=type=bind,source=deep/out,target=/m ls /m", nil, "points outside the repository"},
		{"upper-case type", "RUN --mount=type=BIND,source=etc,target=/m ls /m", nil, `type "BIND" are not allowed`},
		{"continued line", "RUN --mount=type=bind,\\\nsource=root,target=/h cat /h/etc/os-release", nil, "points outside the repository"},
		{"continued flags", "RUN --network=none \\\n  --mount=type=bind,source=etc,target=/m \\\n  ls /m", nil, "points outside the repository"},
		{"another escape character", "# escape=`\nFROM x\nRUN `\n --mount=type=bind,source=etc,target=/m ls /m", nil, "points outside the repository"},
		{"source named twice", "RUN --mount=type=bind,source=.,src=root,target=/h cat /h/etc/os-release", nil, "names its source twice"},
		{"source twice, same key", "RUN --mount=type=bind,source=.,source=root,target=/h true", nil, "names its source twice"},
		{"type named twice", "RUN --mount=type=cache,type=bind,source=root,target=/h true", nil, "names its type twice"},
		{"upper-case key", "RUN --mount=type=bind,SOURCE=root,target=/h true", nil, "spelled differently"},
		{"a build argument", "ARG S=etc\nRUN --mount=type=bind,source=$S,target=/m ls /m", nil, "points outside the repository"},
		{"a build argument given", "ARG S=sub\nRUN --mount=type=bind,source=${S},target=/m ls /m", map[string]string{"S": "root"}, "points outside the repository"},
		{"quoted option", `RUN --mount=type=bind,"source=etc",target=/m ls /m`, nil, "points outside the repository"},
		{"escaped characters", `RUN --mount=type=bind,source=r\oot,target=/m ls /m`, nil, "points outside the repository"},
		{"network host", "RUN --network=host true", nil, "--network=host"},
		{"network by path", "RUN --network=/proc/1/ns/net true", nil, "only the default network and none"},
		{"ssh mount", "RUN --mount=type=ssh true", nil, `type "ssh" are not allowed`},
		{"device mount", "RUN --mount=type=devpts,target=/dev/pts true", nil, `type "devpts" are not allowed`},
		{"security insecure", "RUN --security=insecure true", nil, "only supports the --mount and --network flag"},
		{"copy through a link", "COPY etc/passwd /x", nil, "points outside the repository"},
		{"copy of a link", "COPY passwd /x", nil, "points outside the repository"},
		{"add through a link", "ADD root/etc/shadow /x", nil, "points outside the repository"},
		{"copy through a link, glob after", "COPY root/etc/*.conf /x/", nil, "points outside the repository"},
		{"an ONBUILD trigger is read too", "ONBUILD RUN --mount=type=bind,source=root,target=/h true", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df := tt.df
			if !strings.Contains(df, "FROM x") {
				df = "FROM base AS base\nFROM base\n" + df + "\n"
			}
			bf, err := testBuildFile(t, ctx, df, tt.args)
			if err == nil {
				err = checkPolicy(bf)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("policy(%q) = %v, want it allowed", tt.df, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("policy(%q) = %v, want an error containing %q", tt.df, err, tt.wantErr)
			}
		})
	}
}

// TestIgnoreFile checks which ignore file a build uses, in buildah's order,
// and that one leading out of the repository is refused.
func TestIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"Dockerfile":                 "FROM x\n",
		".dockerignore":              "a\n",
		".containerignore":           "b\n",
		"Dockerfile.containerignore": "c\n",
	})
	real, _ := filepath.EvalSymlinks(dir)
	got := func() string {
		t.Helper()
		p, ex, err := ignoreFile(real, real, filepath.Join(real, "Dockerfile"))
		if err != nil {
			return "error: " + err.Error()
		}
		return filepath.Base(p) + " " + strings.Join(ex, ",")
	}
	if g := got(); g != "Dockerfile.containerignore c" {
		t.Errorf("ignore file = %q, want Dockerfile.containerignore", g)
	}
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile.dockerignore": "d\n"})
	if g := got(); g != "Dockerfile.dockerignore d" {
		t.Errorf("ignore file = %q, want Dockerfile.dockerignore", g)
	}
	os.Remove(filepath.Join(dir, "Dockerfile.dockerignore"))
	os.Remove(filepath.Join(dir, "Dockerfile.containerignore"))
	if g := got(); g != ".containerignore b" {
		t.Errorf("ignore file = %q, want .containerignore", g)
	}
	os.Remove(filepath.Join(dir, ".containerignore"))
	if g := got(); g != ".dockerignore a" {
		t.Errorf("ignore file = %q, want .dockerignore", g)
	}
	os.Remove(filepath.Join(dir, ".dockerignore"))
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, ".dockerignore")); err != nil {
		t.Fatal(err)
	}
	if g := got(); !strings.Contains(g, "points outside the repository") {
		t.Errorf("ignore file = %q, want it refused", g)
	}
}
