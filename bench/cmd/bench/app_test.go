package main

import (
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPointDockerfile(t *testing.T) {
	const reg = "127.0.0.1:5000"
	goDF := "ARG GO_IMAGE=localhost/base/go:1.26\nARG RUNTIME_IMAGE=localhost/base/runtime:1\nFROM ${GO_IMAGE} AS build\nRUN go build\nFROM ${RUNTIME_IMAGE}\nCOPY --from=localhost/base/go:1.26 /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/\n"
	tests := []struct {
		name, df  string
		passArgs  bool
		want      string
		wantArgs  map[string]string
		wantBases []string
	}{
		{
			name:      "literal FROM",
			df:        "FROM localhost/base/node:20 AS deps\nRUN npm ci\nFROM localhost/base/node:20\n",
			want:      "FROM " + reg + "/base/node:20 AS deps\nRUN npm ci\nFROM " + reg + "/base/node:20\n",
			wantBases: []string{"node:20"},
		},
		{
			name:      "ARG defaults rewritten",
			df:        goDF,
			want:      strings.ReplaceAll(goDF, "localhost/", reg+"/"),
			wantBases: []string{"go:1.26", "runtime:1"},
		},
		{
			name:      "ARGs passed as build arguments",
			df:        goDF,
			passArgs:  true,
			want:      strings.Replace(goDF, "--from=localhost/", "--from="+reg+"/", 1),
			wantArgs:  map[string]string{"GO_IMAGE": reg + "/base/go:1.26", "RUNTIME_IMAGE": reg + "/base/runtime:1"},
			wantBases: []string{"go:1.26", "runtime:1"},
		},
		{
			name:      "quoted ARG default, other ARGs left alone",
			df:        "ARG BASE=\"localhost/base/go:1.26\" OTHER=x\narg VERSION=1\nFROM $BASE\n",
			passArgs:  true,
			want:      "ARG BASE=\"localhost/base/go:1.26\" OTHER=x\narg VERSION=1\nFROM $BASE\n",
			wantArgs:  map[string]string{"BASE": reg + "/base/go:1.26"},
			wantBases: []string{"go:1.26"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pointDockerfile([]byte(tt.df), reg, tt.passArgs)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Dockerfile) != tt.want {
				t.Errorf("Dockerfile =\n%s\nwant\n%s", got.Dockerfile, tt.want)
			}
			if !maps.Equal(got.BuildArgs, tt.wantArgs) {
				t.Errorf("BuildArgs = %v, want %v", got.BuildArgs, tt.wantArgs)
			}
			if !slices.Equal(got.Bases, tt.wantBases) {
				t.Errorf("Bases = %v, want %v", got.Bases, tt.wantBases)
			}
		})
	}
	if _, err := pointDockerfile([]byte("FROM scratch\nCOPY a /\n"), reg, false); err == nil {
		t.Error("pointDockerfile of a Dockerfile without a base image: no error")
	}
}

// The sample apps' Dockerfiles name only base images the harness makes,
// and the Go app's has the shape the benchmark wants of it.
func TestSampleAppDockerfiles(t *testing.T) {
	for _, app := range sampleApps(repoRoot(t)) {
		df, err := os.ReadFile(filepath.Join(app.Dir, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		pointed, err := pointDockerfile(df, "127.0.0.1:5000", true)
		if err != nil {
			t.Fatalf("%s: %v", app.Name, err)
		}
		for _, b := range pointed.Bases {
			name, _, _ := strings.Cut(b, ":")
			if _, ok := baseImages[name]; !ok {
				t.Errorf("%s: the Dockerfile names base/%s, which the harness does not make", app.Name, b)
			}
		}
		if strings.Contains(string(pointed.Dockerfile), "localhost/base/") && len(pointed.BuildArgs) == 0 {
			t.Errorf("%s: a base image left unpointed:\n%s", app.Name, pointed.Dockerfile)
		}
		if app.Name != "go" {
			continue
		}
		if want := []string{"GO_IMAGE", "RUNTIME_IMAGE"}; !slices.Equal(slices.Sorted(maps.Keys(pointed.BuildArgs)), want) {
			t.Errorf("go: build arguments %v, want %v", slices.Sorted(maps.Keys(pointed.BuildArgs)), want)
		}
		for _, want := range []string{"FROM ${GO_IMAGE} AS build", "FROM ${RUNTIME_IMAGE}\n", "COPY --from=127.0.0.1:5000/base/", "COPY --from=build ", "\nLABEL ", "\nUSER ", "\nEXPOSE ", "\nHEALTHCHECK ", "\nCMD [\""} {
			if !strings.Contains(string(pointed.Dockerfile), want) {
				t.Errorf("go: the Dockerfile has no %q", want)
			}
		}
	}
}

// The source scenario rewrites one file: at revision 0 it is the file as
// committed, and every revision is still valid source.
func TestSourceScenario(t *testing.T) {
	for _, app := range sampleApps(repoRoot(t)) {
		b, err := os.ReadFile(filepath.Join(app.Dir, app.SourceFile))
		if err != nil {
			t.Fatal(err)
		}
		if got := app.Source(0); got != string(b) {
			t.Errorf("%s: Source(0) =\n%s\nwant %s as committed:\n%s", app.Name, got, app.SourceFile, b)
		}
		if app.Name == "go" {
			if _, err := parser.ParseFile(token.NewFileSet(), app.SourceFile, app.Source(7), 0); err != nil {
				t.Errorf("go: Source(7) does not parse: %v", err)
			}
		}
	}
}

func TestCheckGoBump(t *testing.T) {
	const m = "github.com/klauspost/compress"
	mod := "module example.com/notes\n\ngo 1.22\n\nrequire (\n\tgithub.com/go-chi/chi/v5 v5.2.1\n\t" + m + " v1.17.3\n)\n"
	sum := m + " v1.17.3 h1:aaa=\n" + m + " v1.17.3/go.mod h1:bbb=\ngithub.com/go-chi/chi/v5 v5.2.1 h1:ccc=\n"
	tests := []struct {
		name, mod, sum, v string
		ok                bool
	}{
		{"bumped", mod, sum, "v1.17.3", true},
		{"single-line require", "module x\n\nrequire " + m + " v1.17.3\n", sum, "v1.17.3", true},
		{"go.mod names another version", mod, sum, "v1.17.4", false},
		{"a prefix of the version is not it", strings.Replace(mod, "v1.17.3", "v1.17.30", 1), sum, "v1.17.3", false},
		{"go.sum keeps the old version", mod, sum + m + " v1.17.0 h1:ddd=\n", "v1.17.3", false},
		{"go.sum lacks the go.mod hash", mod, m + " v1.17.3 h1:aaa=\n", "v1.17.3", false},
	}
	for _, tt := range tests {
		err := checkGoBump([]byte(tt.mod), []byte(tt.sum), m, tt.v)
		if (err == nil) != tt.ok {
			t.Errorf("%s: checkGoBump = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestUlimitFlags(t *testing.T) {
	got := ulimitFlags(unix.Rlimit{Cur: 1024, Max: 20000}, unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
	want := []string{"--ulimit", "nofile=1024:20000", "--ulimit", "nproc=-1:-1"}
	if !slices.Equal(got, want) {
		t.Errorf("ulimitFlags = %q, want %q", got, want)
	}
}

func TestKeepGorootPath(t *testing.T) {
	tests := []struct {
		rel  string
		dir  bool
		keep bool
	}{
		{"bin/go", false, true},
		{"pkg/tool/linux_amd64/compile", false, true},
		{"src/net/http/server.go", false, true},
		{"src/net/http/server_test.go", false, false},
		{"src/net/http/testdata", true, false},
		{"src/cmd", true, false},
		{"src/cmp", true, true},
		{"src/cmd.go", false, true},
		{"test", true, false},
		{"doc", true, false},
		{"lib/time/zoneinfo.zip", false, true},
		{"go.env", false, true},
		{"VERSION", false, true},
	}
	for _, tt := range tests {
		if got := keepGorootPath(tt.rel, tt.dir); got != tt.keep {
			t.Errorf("keepGorootPath(%q, %v) = %v, want %v", tt.rel, tt.dir, got, tt.keep)
		}
	}
}

func TestFailureSummary(t *testing.T) {
	msg := "buildah build r/bench-ci/go:abc: exit status 1\n[1/2] STEP 5/7: RUN go mod download\ngo: example.com/m@v1: unexpected EOF\nError: building at STEP \"RUN go mod download\": exit status 1\n"
	if got, want := failureSummary(msg), `buildah build r/bench-ci/go:abc: exit status 1: Error: building at STEP "RUN go mod download": exit status 1`; got != want {
		t.Errorf("failureSummary = %q, want %q", got, want)
	}
	if got := failureSummary("deployment d-1 failed at \"build\": boom"); got != "deployment d-1 failed at \"build\": boom" {
		t.Errorf("failureSummary of one line = %q", got)
	}
}
