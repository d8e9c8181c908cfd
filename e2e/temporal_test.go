package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// An external Temporal that asks for an API key: the server refuses to
// start without it, and with --temporal-api-key-file the server and its
// agents present it and a push builds. (The "external" Temporal is an
// embedded one started here, whose own credential serves as the key.)
func TestExternalTemporalWithAPIKey(t *testing.T) {
	ts, creds := testenv.Temporal(t, func(context.Context, string) (string, error) {
		return "", errors.New("no deployments known here")
	})
	apiKey, err := creds.Server(credential.Temporal)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "temporal-api-key")
	if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, slipwayBin, "server", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--listen", "127.0.0.1:0", "--temporal", ts.HostPort()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "connect to Temporal at "+ts.HostPort()) {
		t.Errorf("server without the API key: %v\n%s\nwant it to stop, saying it cannot connect to Temporal", err, out)
	}

	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--temporal", ts.HostPort(), "--temporal-api-key-file", keyFile)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo external\n"})
	s.addProject(t, "ext", "file://"+dir)
	if d := s.deployWait(t, "ext", sha); d.Status != "succeeded" {
		t.Fatalf("deployment %s\nagent:\n%s", d.Status, s.agentLog("ext"))
	}
	ac, err := builder.ReadAgentConfig(filepath.Join(s.DataDir, "volumes", "ext", "agent.json"))
	if err != nil || ac.Credentials.Temporal != apiKey || ac.Credentials.PayloadKey == "" {
		t.Errorf("the agent's configuration: %v; Temporal credential is the API key: %v, payload key given: %v",
			err, ac.Credentials.Temporal == apiKey, ac.Credentials.PayloadKey != "")
	}
}
