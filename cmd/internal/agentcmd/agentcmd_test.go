package agentcmd

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The agent starts from its configuration file only, and refuses one it
// cannot read as its own before it dials anything.
func TestAgentNeedsItsConfigFile(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.json")
	if err := os.WriteFile(newer, []byte(`{"version": 2, "project": "web"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, `required flag(s) "config" not set`},
		{[]string{"--config", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"--config", newer}, "version 2: this agent reads version 1 only"},
		{[]string{"--config", newer, "--project", "web"}, "unknown flag: --project"},
	} {
		cmd := New()
		cmd.SetArgs(c.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.ExecuteContext(t.Context()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("agent %v = %v, want %q", c.args, err, c.want)
		}
	}
}
