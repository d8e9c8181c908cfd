package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/payloadcodec"
	"github.com/slipway-ci/slipway/server"
)

// Temporal checks its callers, and its histories hold no credential in
// clear. Project tp fetches over HTTP with a password in its repository
// URL and has a build secret; after tp and tq have built:
//
//   - the histories of tp's deployment, read straight from Temporal with
//     the server's credential but without the payload codec, show none of
//     the password, the secret or the build's secrets token (which the
//     codec's reading shows: the check can fail);
//   - a local user with no credential cannot list workflows or read a
//     history;
//   - a build of tp that escaped its container, with tp's credential from
//     its agent.json, cannot poll tq's queue, read tp's or tq's histories,
//     list workflows, signal tq's deployment or end a workflow.
func TestAttackTemporal(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	const password, secretValue = "tEmp0ral-h1st0ry-pw", "tEmp0ral-bu1ld-s3cret"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo built\n"})
	gitURL := gitHTTPServer(t, dir, "ci", password)
	s.addProject(t, "tp", strings.Replace(gitURL, "http://", "http://ci:"+password+"@", 1)+"/repo.git")
	if out, code := s.secretSet(t, "tp", "API_TOKEN", secretValue); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}
	s.addProject(t, "tq", "file://"+dir)
	dp, dq := s.deployWait(t, "tp", sha), s.deployWait(t, "tq", sha)
	if dp.Status != "succeeded" || dq.Status != "succeeded" {
		t.Fatalf("deployments: tp %s, tq %s\nagent of tp:\n%s", dp.Status, dq.Status, s.agentLog("tp"))
	}

	token := historyHasNoSecret(t, s, "tp", dp.ID, password, secretValue)
	secrets := []string{password, url.QueryEscape(password), secretValue, token}

	addr, ns := temporalAddr(t, s), builder.DefaultTemporalNamespace
	// attackAs runs the attacker (as nobody) with args, the first the
	// attack's name in the attacker, and records it under name.
	attackAs := func(name string, args ...string) {
		t.Helper()
		attack(t, "temporal: "+name, runAttacker(t, args[0], args[1:]...), secrets...)
	}
	attackAs("list workflows without a credential", "temporal-list", addr, ns, "-")
	attackAs("read a deployment's history without a credential", "temporal-history", addr, ns, "-", builder.DeploymentWorkflowID(dp.ID))
	attackAs("list workflows with a made-up server credential", "temporal-list", addr, ns, forgedServerCredential())

	ac, err := builder.ReadAgentConfig(filepath.Join(s.DataDir, "volumes", "tp", "agent.json"))
	if err != nil || ac.Credentials.Temporal == "" {
		t.Fatalf("tp's agent.json: %v (Temporal credential %q)", err, ac.Credentials.Temporal)
	}
	tok := ac.Credentials.Temporal
	for _, a := range []struct {
		name string
		args []string
	}{
		{"poll another project's queue", []string{"temporal-poll", addr, ns, tok, builder.Queue("tq")}},
		{"read its own deployment's history", []string{"temporal-history", addr, ns, tok, builder.DeploymentWorkflowID(dp.ID)}},
		{"read its own build's history", []string{"temporal-history", addr, ns, tok, builder.BuildWorkflowID(dp.ID)}},
		{"read another project's history", []string{"temporal-history", addr, ns, tok, builder.DeploymentWorkflowID(dq.ID)}},
		{"list workflows", []string{"temporal-list", addr, ns, tok}},
		{"signal another project's deployment", []string{"temporal-signal", addr, ns, tok, builder.DeploymentWorkflowID(dq.ID), builder.SignalProgress}},
		{"terminate its project's workflow", []string{"temporal-terminate", addr, ns, tok, deploy.ProjectWorkflowID("tp")}},
		{"poll another project's queue as a sticky queue of its own", []string{"temporal-poll-sticky", addr, ns, tok, builder.Queue("tq"), builder.Queue("tp")}},
		{"poll the server's queue as a sticky queue of its own", []string{"temporal-poll-sticky", addr, ns, tok, deploy.ControlQueue, builder.Queue("tp")}},
		{"complete another project's activity with a made-up task token", []string{"temporal-complete", addr, ns, tok, builder.BuildWorkflowID(dq.ID)}},
		{"complete its deployment's activity (the server's) with a made-up task token", []string{"temporal-complete", addr, ns, tok, builder.DeploymentWorkflowID(dp.ID)}},
	} {
		attackAs("an escaped build of tp with its credential: "+a.name, a.args...)
	}
}

// historyHasNoSecret reads the histories of deployment id's workflows and
// its project's from Temporal with the server's credential and without
// the payload codec: they must hold none of secrets (the first is the repository's
// password), nor the build's secrets token; decrypted with the payload
// key, the build's input must show the password and a token, which it
// returns.
func historyHasNoSecret(t *testing.T, s *serverProc, project, id string, secrets ...string) string {
	t.Helper()
	ctx := t.Context()
	raw, err := server.DialTemporal(ctx, s.DataDir, builder.DefaultTemporalNamespace, true)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	in := buildInput(t, s, raw, id)
	if !strings.Contains(in.Repo, secrets[0]) || in.SecretsToken == "" {
		t.Fatalf("the build's input read through the codec: repo %q, secrets token %q; want the password and a token", in.Repo, in.SecretsToken)
	}
	secrets = append(secrets, url.QueryEscape(secrets[0]), in.SecretsToken)
	for _, wf := range []string{builder.DeploymentWorkflowID(id), builder.BuildWorkflowID(id), deploy.ProjectWorkflowID(project)} {
		text := historyText(ctx, t, raw, wf)
		if !strings.Contains(text, payloadcodec.Encoding) {
			t.Errorf("history of %s has no encrypted payload:\n%.2000s", wf, text)
		}
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("the history of %s holds %q in clear", wf, sec)
			}
		}
	}
	return in.SecretsToken
}

// buildInput is the input of deployment id's BuildWorkflow, read with c
// and decrypted with the server's payload key.
func buildInput(t *testing.T, s *serverProc, c client.Client, id string) builder.BuildInput {
	t.Helper()
	key, err := credential.ReadKeyFile(filepath.Join(s.DataDir, payloadcodec.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := payloadcodec.New(key)
	if err != nil {
		t.Fatal(err)
	}
	it := c.GetWorkflowHistory(t.Context(), builder.BuildWorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var in builder.BuildInput
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		t.Fatalf("first event of %s: %v", builder.BuildWorkflowID(id), ev.EventType)
	}
	if err := codec.DataConverter().FromPayloads(attrs.Input, &in); err != nil {
		t.Fatalf("decode the build's input: %v", err)
	}
	return in
}

// historyText is a workflow's whole history as Temporal stores it: each
// event in its wire form (which shows payloads' bytes as they are) and as
// JSON.
func historyText(ctx context.Context, t *testing.T, c client.Client, id string) string {
	t.Helper()
	var b strings.Builder
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		w, _ := proto.Marshal(ev)
		j, _ := protojson.Marshal(ev)
		b.Write(w)
		b.WriteByte('\n')
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// forgedServerCredential is a credential that claims to be the server's
// Temporal credential, signed with a key of its own.
func forgedServerCredential() string {
	body, _ := json.Marshal(credential.Claims{Kind: credential.Temporal, Nonce: "forged"})
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	b := credential.Prefix + base64.RawURLEncoding.EncodeToString(body)
	return b + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// temporalAddr is the embedded Temporal's frontend (state.json).
func temporalAddr(t *testing.T, s *serverProc) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		TemporalPort int `json:"temporalPort"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.TemporalPort == 0 {
		t.Fatalf("state.json: %v (Temporal port %d)", err, st.TemporalPort)
	}
	return fmt.Sprintf("127.0.0.1:%d", st.TemporalPort)
}
