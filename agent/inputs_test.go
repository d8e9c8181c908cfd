package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestExternalImages(t *testing.T) {
	for _, tc := range []struct {
		name, df string
		want     []string
		why      bool
	}{
		{name: "single", df: "FROM reg:5000/base:1\nRUN true\n", want: []string{"reg:5000/base:1"}},
		{name: "stages", df: "FROM reg/node:20 AS build\nRUN make\nFROM reg/node:20-slim\nCOPY --from=build /app /app\nCOPY --from=0 /x /x\n", want: []string{"reg/node:20", "reg/node:20-slim"}},
		{name: "copy from image", df: "FROM scratch\nCOPY --from=reg/tools:1 /bin/t /t\nRUN --mount=type=bind,from=reg/data:2,target=/d true\n", want: []string{"reg/tools:1", "reg/data:2"}},
		{name: "continued lines and comments", df: "# FROM nothing\nFROM \\\n  --platform=linux/amd64 \\\n  reg/base:1\n", want: []string{"reg/base:1"}},
		// podman skips a blank line inside a continuation: the --from
		// still belongs to the COPY.
		{name: "blank line in a continuation", df: "FROM reg/base:1\nCOPY \\\n\n  --from=reg/tools:1 /t /t\n", want: []string{"reg/base:1", "reg/tools:1"}},
		{name: "variable base", df: "ARG BASE=reg/base:1\nFROM $BASE\n", why: true},
		{name: "remote ADD", df: "FROM reg/base:1\nADD https://example.com/x.tgz /x\n", why: true},
		{name: "empty FROM", df: "FROM\n", why: true},
	} {
		got, why := externalImages([]byte(tc.df))
		if tc.why != (why != "") || !slices.Equal(got, tc.want) {
			t.Errorf("%s: externalImages = %q, %q; want %q (reason expected: %v)", tc.name, got, why, tc.want, tc.why)
		}
	}
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// inputKey reads the Dockerfile as Build does and returns the key of the
// build's inputs, or "" and why.
func inputKey(ctx context.Context, contextDir, dockerfile string, buildArgs, secretDigests map[string]string, resolve resolveDigest) (string, string) {
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", err.Error()
	}
	in := readInputs(ctx, contextDir, dockerfile, df, buildArgs, secretDigests, resolve)
	return in.key, in.why
}

func TestInputKey(t *testing.T) {
	digest := "sha256:1"
	resolve := func(ctx context.Context, ref string) (string, error) { return digest, nil }
	files := map[string]string{
		"Dockerfile":    "FROM reg/base:1\nCOPY . /app\n",
		"src/a.txt":     "a",
		".dockerignore": "logs\n*.tmp\n",
		"logs/x.log":    "noise",
	}
	key := func(dir string) string {
		t.Helper()
		k, why := inputKey(t.Context(), dir, filepath.Join(dir, "Dockerfile"), map[string]string{"A": "1"}, nil, resolve)
		if k == "" {
			t.Fatalf("inputKey: no key: %s", why)
		}
		return k
	}
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, files)
	writeTree(t, b, files)
	base := key(a)
	if key(b) != base {
		t.Errorf("two checkouts of the same tree have different keys")
	}
	writeTree(t, b, map[string]string{"logs/y.log": "more noise", "z.tmp": "tmp"})
	if key(b) != base {
		t.Errorf("files excluded by .dockerignore changed the key")
	}
	writeTree(t, b, map[string]string{"src/a.txt": "changed"})
	if key(b) == base {
		t.Errorf("a changed source file kept the key")
	}
	digest = "sha256:2"
	if key(a) == base {
		t.Errorf("a new base image digest kept the key")
	}
	if k, _ := inputKey(t.Context(), a, filepath.Join(a, "Dockerfile"), map[string]string{"A": "2"}, nil, resolve); k == key(a) {
		t.Errorf("a changed build argument kept the key")
	}
	failing := func(ctx context.Context, ref string) (string, error) { return "", errors.New("unreachable") }
	if k, why := inputKey(t.Context(), a, filepath.Join(a, "Dockerfile"), nil, nil, failing); k != "" || why == "" {
		t.Errorf("an unresolvable base image gave key %q (reason %q), want none", k, why)
	}
}

func TestDockerfileLines(t *testing.T) {
	df := "# syntax note\n\nFROM a AS b\nRUN echo \\\n  one \\\n\n  # a comment inside\n  two\nCOPY x \\\n"
	type line struct {
		raw  int
		text string
		open bool
	}
	var got []line
	for l := range dockerfileLines([]byte(df)) {
		got = append(got, line{len(l.raw), l.text, l.open})
	}
	want := []line{
		{1, "", false},
		{1, "", false},
		{1, "FROM a AS b", false},
		{5, "RUN echo one two", false},
		{1, "COPY x", true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dockerfileLines:\n got %+v\nwant %+v", got, want)
	}
	if got, want := logicalLines([]byte(df)), []string{"FROM a AS b", "RUN echo one two", "COPY x"}; !slices.Equal(got, want) {
		t.Errorf("logicalLines = %q, want %q", got, want)
	}
	if _, why := parseStages([]byte(df)); why != "a continued last line" {
		t.Errorf("parseStages of a continued last line: %q", why)
	}
	if _, why := parseStages([]byte("# escape=`\nFROM a\n")); why != "a parser directive" {
		t.Errorf("parseStages of a parser directive: %q", why)
	}
	if _, why := parseStages([]byte("FROM a\n# escape=`\nRUN x\n")); why != "" {
		t.Errorf("a comment after the first instruction is no directive, got %q", why)
	}
}
