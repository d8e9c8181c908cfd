package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
)

// slipwayIn runs the CLI against ts with stdin.
func (ts *testServer) slipwayIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	root, _ := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetArgs(append([]string{"--server", ts.url, "--token", ts.token}, args...))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	if err := root.ExecuteContext(t.Context()); err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
		return 1, out.String(), errOut.String()
	}
	return 0, out.String(), errOut.String()
}

func TestSecretCommands(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	if code, out, errOut := ts.slipwayIn(t, "from-stdin-value\n", "secret", "set", "web", "npm_token"); code != 0 || !strings.Contains(out, "id=npm_token") || strings.Contains(out+errOut, "from-stdin") {
		t.Fatalf("secret set from stdin = %d %q %q", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "v")
	if err := os.WriteFile(file, []byte("from-file-value\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := ts.slipwayIn(t, "", "secret", "set", "web", "file_token", "--value-file", file); code != 0 {
		t.Fatalf("secret set --value-file = %d %q %q", code, out, errOut)
	}
	if code, _, errOut := ts.slipwayIn(t, "", "secret", "set", "web", "argv_token", "--value", "from-argv-value"); code != 0 || !strings.Contains(errOut, "warning: --value puts the secret in your shell history") {
		t.Fatalf("secret set --value = %d %q", code, errOut)
	}
	vals, err := ts.store.SecretValues(t.Context(), "web")
	if err != nil || len(vals) != 3 {
		t.Fatalf("stored: %v, %v", vals, err)
	}
	for _, v := range vals {
		want := map[string]string{"npm_token": "from-stdin-value", "file_token": "from-file-value", "argv_token": "from-argv-value"}[v.Name]
		if string(v.Value) != want {
			t.Errorf("secret %s = %q, want %q (one trailing newline dropped)", v.Name, v.Value, want)
		}
	}

	code, out, _ := ts.slipwayCmd(t, "secrets", "web")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "npm_token") || strings.Contains(out, "value") {
		t.Errorf("secrets = %d:\n%s", code, out)
	}
	code, out, _ = ts.slipwayCmd(t, "secrets", "web", "--json")
	var list []slipway.Secret
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 3 || list[0].Name != "argv_token" || list[0].UpdatedAt.IsZero() || strings.Contains(out, "value") {
		t.Errorf("secrets --json = %d %v:\n%s", code, err, out)
	}
	if code, out, _ := ts.slipwayCmd(t, "secret", "rm", "web", "argv_token"); code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("secret rm = %d %q", code, out)
	}

	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"some-value", []string{"secret", "set", "web", "a,b"}, "invalid secret name"},
		{"abc\n", []string{"secret", "set", "web", "short"}, "at least 4 bytes"},
		{strings.Repeat("x", slipway.MaxSecretBytes+1), []string{"secret", "set", "web", "big"}, "the limit is 65536 bytes"},
		{"some-value", []string{"secret", "set", "nope", "x"}, `project "nope" not found`},
		{"", []string{"secret", "rm", "web", "argv_token"}, `has no secret "argv_token"`},
		{"", []string{"secrets", "nope"}, `project "nope" not found`},
		{"", []string{"secret", "set", "web", "x", "--value-file", "/nonexistent/file"}, "no such file"},
		{"", []string{"secret", "set", "web"}, "takes 2 argument(s) (PROJECT NAME)"},
	} {
		if code, _, errOut := ts.slipwayIn(t, tc.stdin, tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("slipway %v = %d %q; want an error with %q", tc.args, code, errOut, tc.want)
		}
	}
}
