package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natslog"
)

// The attacks on the embedded NATS, from a local account without a
// credential and from a build of project natsp that escaped its container
// (it holds natsp's NATS credential, from natsp's agent.json): listen to
// the inboxes where build secrets travel and to every Slipway subject,
// forge a log line into project natsq's deployment, ask for natsq's build
// secrets, and read, purge or delete the log stream through $JS.API. Each
// must be refused by NATS itself; natsq's log and stream are checked to be
// untouched afterwards.
func TestNATSAttacks(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	const qSecret = "natsq-s3cret-value-42"
	dirP, shaP := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo natsp-built\n"})
	dirQ, shaQ := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo natsq-built\n"})
	s.addProject(t, "natsp", dirP)
	s.addProject(t, "natsq", dirQ)
	if out, code := s.secretSet(t, "natsq", "token", qSecret); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}
	for project, sha := range map[string]string{"natsp": shaP, "natsq": shaQ} {
		if d := s.deployWait(t, project, sha); d.Status != "succeeded" {
			t.Fatalf("%s: deployment %s", project, d.Status)
		}
	}
	q := s.deployments(t, "natsq")[0].ID
	qStream := s.streamText(t, "natsq", q)
	if !strings.Contains(qStream, "natsq-built") {
		t.Fatalf("natsq's stream lacks its build's output:\n%s", qStream)
	}
	url := s.natsURL(t)
	// What a build of natsp that escaped its container finds on its volume.
	ac, err := builder.ReadAgentConfig(filepath.Join(s.DataDir, "volumes", "natsp", "agent.json"))
	if err != nil || ac.Credentials.NATS == "" {
		t.Fatalf("natsp's agent.json: %v, NATS credential %q", err, ac.Credentials.NATS)
	}
	pCred := ac.Credentials.NATS
	// The control: the same tools, with the same credential, on what
	// natsp's agent may do, get through.
	pDep := s.deployments(t, "natsp")[0].ID
	if r := runAttacker(t, "nats-request", url, pCred, natslog.LastLineSubject("natsp", pDep), ""); r.Blocked || len(r.Seen) != 1 || !strings.Contains(r.Seen[0], `"last":`) {
		t.Fatalf("natsp's credential cannot ask for natsp's own last log line: %+v", r)
	}

	const forged = "FORGED by natsp's escaped build"
	line, _ := json.Marshal(map[string]any{"deployment": q, "n": 1000, "time": time.Now().UTC(), "stream": "stdout", "text": forged})
	secretsAsk, _ := json.Marshal(map[string]string{"deployment": q, "token": "guessed"})
	purge := "$JS.API.STREAM.PURGE." + natslog.StreamName
	for _, a := range []struct {
		name string
		args []string
	}{
		{"NATS: subscribe _INBOX.> without a credential", []string{"nats-subscribe", url, "-", "_INBOX.>"}},
		{"NATS: subscribe slipway.> without a credential", []string{"nats-subscribe", url, "-", "slipway.>"}},
		{"NATS: purge the log stream without a credential", []string{"nats-request", url, "-", purge, ""}},
		{"NATS: subscribe _INBOX.> with natsp's credential", []string{"nats-subscribe", url, pCred, "_INBOX.>"}},
		{"NATS: subscribe slipway.> with natsp's credential", []string{"nats-subscribe", url, pCred, "slipway.>"}},
		{"NATS: subscribe natsq's inbox with natsp's credential", []string{"nats-subscribe", url, pCred, builder.NATSInboxPrefix("natsq") + ".>"}},
		{"NATS: forge a log line into natsq's deployment with natsp's credential",
			[]string{"nats-publish", url, pCred, natslog.Subject("natsq", q), natslog.MsgID(q, 1000, 1000), string(line)}},
		{"NATS: ask for natsq's build secrets with natsp's credential", []string{"nats-request", url, pCred, "slipway.secrets.natsq", string(secretsAsk)}},
		{"NATS: purge the log stream with natsp's credential", []string{"nats-request", url, pCred, purge, ""}},
		{"NATS: delete the log stream with natsp's credential", []string{"nats-request", url, pCred, "$JS.API.STREAM.DELETE." + natslog.StreamName, ""}},
		{"NATS: read natsq's last log message with natsp's credential",
			[]string{"nats-request", url, pCred, "$JS.API.DIRECT.GET." + natslog.StreamName + "." + natslog.Subject("natsq", q), ""}},
	} {
		attack(t, a.name, runAttacker(t, a.args[0], a.args[1:]...), qSecret, "natsq-built")
	}

	// On its own project's subject NATS takes natsp's line of natsq's
	// deployment; the archiver must not store it into natsq's log.
	ownSubject := natslog.Subject("natsp", q)
	line2, _ := json.Marshal(map[string]any{"deployment": q, "n": 1001, "time": time.Now().UTC(), "stream": "stdout", "text": forged})
	r := runAttacker(t, "nats-publish", url, pCred, ownSubject, natslog.MsgID(q, 1001, 1001), string(line2))
	dropped := regexp.MustCompile(`is not one of the project's of subject ` + regexp.QuoteMeta(ownSubject))
	r.Blocked, r.Wrote = false, false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if stored, _ := s.cli(t, "logs", q); strings.Contains(stored, forged) {
			r.Wrote, r.Detail = true, r.Detail+"; natsq's stored log holds the forged line"
			break
		}
		if dropped.MatchString(s.out.String()) {
			r.Blocked, r.Detail = true, r.Detail+"; the archiver dropped it (another project's deployment)"
			break
		}
	}
	attack(t, "NATS: forge a log line into natsq's deployment on natsp's own log subject", r, qSecret, "natsq-built")

	// natsq's log is whole and unforged, in the stream and in the store.
	if got := s.streamText(t, "natsq", q); got != qStream {
		t.Errorf("natsq's stream changed under the attacks:\nbefore:\n%s\nafter:\n%s", qStream, got)
	}
	if stored, _ := s.cli(t, "logs", q); strings.Contains(stored, forged) || !strings.Contains(stored, "natsq-built") {
		t.Errorf("natsq's stored log:\n%s", stored)
	}
}

// natsURL is the embedded NATS's client URL (its port from the server's
// state file), without a credential.
func (s *serverProc) natsURL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		NATSPort int `json:"natsPort"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.NATSPort == 0 {
		t.Fatalf("state.json: %v, natsPort %d", err, st.NATSPort)
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", st.NATSPort)
}
