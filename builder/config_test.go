package builder_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// full is a configuration with every field set.
func full(t *testing.T, dir string) builder.AgentConfig {
	t.Helper()
	c := builder.AgentConfig{
		Version:           builder.AgentConfigVersion,
		Project:           "web",
		VolumeDir:         filepath.Join(dir, "volumes", "web"),
		TemporalHostPort:  "127.0.0.1:7233",
		TemporalNamespace: "ns",
		NATSURL:           "nats://127.0.0.1:4222",
		Registry:          "127.0.0.1:8080",
		RegistryTLSVerify: true,
		IdleTimeout:       2500 * time.Millisecond,
		StartTimeout:      90 * time.Second,
		KeepImages:        3,
		ResetThreshold:    0.8,
		NoReuse:           true,
		Buildah:           "/opt/buildah",
		Runtime:           "/opt/slipway-runc",
		Runc:              "/opt/runc",
		Credentials:       builder.AgentCredentials{NATS: "n", Temporal: "t", Registry: "r", PayloadKey: "k"},
	}
	if zero := testenv.ZeroFields(c); len(zero) > 0 {
		t.Fatalf("the test leaves %v unset: set every field", zero)
	}
	return c
}

func TestAgentConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := full(t, dir)
	path := filepath.Join(dir, "agent.json")
	if err := builder.WriteAgentConfig(path, want, -1, -1); err != nil {
		t.Fatal(err)
	}
	got, err := builder.ReadAgentConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	b, _ := os.ReadFile(path)
	for _, s := range []string{`"version": 1`, `"idleTimeout": "2.5s"`, `"startTimeout": "1m30s"`, `"registryTLSVerify": true`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("the file lacks %s:\n%s", s, b)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".agent.json-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A link planted where the file goes is replaced, not written through.
func TestWriteAgentConfigReplacesALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.json")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := builder.WriteAgentConfig(path, full(t, dir), -1, -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		t.Errorf("%s is not a regular file: %v, %v", path, st.Mode(), err)
	}
}

func TestReadAgentConfigRefuses(t *testing.T) {
	for _, c := range []struct {
		name, file, want string
	}{
		{"a newer version", `{"version": 2, "project": "web", "whatever": "new"}`, "version 2: this agent reads version 1 only"},
		{"no version", `{"project": "web", "volumeDir": "/v", "temporalHostPort": "t:1"}`, "no version"},
		{"an unknown field", `{"version": 1, "project": "web", "volumeDir": "/v", "temporalHostPort": "t:1", "registryTlsVerfy": true}`, `unknown field "registryTlsVerfy"`},
		{"no project", `{"version": 1, "volumeDir": "/v", "temporalHostPort": "t:1"}`, "project required"},
		{"no volume or Temporal", `{"version": 1, "project": "web"}`, "volumeDir, temporalHostPort required"},
		{"a relative volume", `{"version": 1, "project": "web", "volumeDir": "v", "temporalHostPort": "t:1"}`, "not an absolute path"},
		{"a bad duration", `{"version": 1, "project": "web", "volumeDir": "/v", "temporalHostPort": "t:1", "idleTimeout": "3"}`, "idleTimeout"},
		{"not JSON", `version = 1`, "invalid character"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.json")
			if err := os.WriteFile(path, []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := builder.ReadAgentConfig(path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadAgentConfig(%s) = %v, want an error naming the file and saying %q", c.file, err, c.want)
			}
		})
	}
	if _, err := builder.ReadAgentConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("ReadAgentConfig of a missing file succeeded")
	}
}

func TestWriteAgentConfigRefusesWhatTheAgentWould(t *testing.T) {
	dir := t.TempDir()
	c := full(t, dir)
	c.TemporalHostPort = ""
	path := filepath.Join(dir, "agent.json")
	if err := builder.WriteAgentConfig(path, c, -1, -1); err == nil || !strings.Contains(err.Error(), "temporalHostPort required") {
		t.Errorf("WriteAgentConfig without Temporal = %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("the refused configuration was written")
	}
}

func TestAgentConfigDefaults(t *testing.T) {
	got := builder.AgentConfig{Project: "web"}.WithDefaults()
	want := builder.AgentConfig{Project: "web", TemporalNamespace: "default", IdleTimeout: 3 * time.Second,
		StartTimeout: time.Minute, KeepImages: 5, ResetThreshold: 0.75}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	set := full(t, t.TempDir())
	if got := set.WithDefaults(); got != set {
		t.Errorf("WithDefaults changed set fields: %+v, want %+v", got, set)
	}
}
