package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natsserver"
)

// TestExternalNATSWithCreds: an external NATS in operator mode (JWT
// users) asks every client for credentials. The server's clients use
// --nats-creds (every permission of the account), the builders the one
// user of --nats-agent-creds, with only the agents' subjects
// (natsserver.AgentPermissions of any project). A build with a secret
// streams its log, fetches its secret and succeeds.
func TestExternalNATSWithCreds(t *testing.T) {
	dir := t.TempDir()
	url, serverCreds, agentCreds := startOperatorNATS(t, dir)
	s := startServer(t, filepath.Join(dir, "data"), "127.0.0.1:0",
		"--nats", url, "--nats-creds", serverCreds, "--nats-agent-creds", agentCreds)
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	repo, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\n" +
		"RUN --mount=type=secret,id=token test -s /run/secrets/token && echo ext-nats-built\n"})
	s.addProject(t, "extnats", repo)
	if out, code := s.secretSet(t, "extnats", "token", "ext-nats-s3cret"); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}
	if d := s.deployWait(t, "extnats", sha); d.Status != "succeeded" {
		t.Fatalf("deployment %s\nagent:\n%s", d.Status, s.agentLog("extnats"))
	}
	id := s.deployments(t, "extnats")[0].ID
	if stored, _ := s.cli(t, "logs", id); !strings.Contains(stored, "ext-nats-built") {
		t.Errorf("the stored log lacks the build's output:\n%s", stored)
	}
	if log := s.agentLog("extnats"); strings.Contains(log, "log stream unavailable") || !strings.Contains(log, "build secrets fetched") {
		t.Errorf("the agent did not publish its log or fetch its secrets over the external NATS:\n%s", log)
	}
}

// startOperatorNATS starts a nats-server with JetStream in operator mode
// with one account, and writes two users' credentials files into dir:
// the server's (every permission) and the agents' (only theirs). It
// returns its URL and the files.
func startOperatorNATS(t *testing.T, dir string) (url, serverCreds, agentCreds string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, _ := okp.PublicKey()
	op := jwt.NewOperatorClaims(opub)
	// JetStream needs a system account.
	skp, err := nkeys.CreateAccount()
	must(err)
	spub, _ := skp.PublicKey()
	sysJWT, err := jwt.NewAccountClaims(spub).Encode(okp)
	must(err)
	op.SystemAccount = spub
	_, err = op.Encode(okp)
	must(err)
	akp, err := nkeys.CreateAccount()
	must(err)
	apub, _ := akp.PublicKey()
	acc := jwt.NewAccountClaims(apub)
	acc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := acc.Encode(okp)
	must(err)
	user := func(name string, perms *jwt.Permissions) string {
		ukp, err := nkeys.CreateUser()
		must(err)
		upub, _ := ukp.PublicKey()
		uc := jwt.NewUserClaims(upub)
		uc.Name = name
		if perms != nil {
			uc.Permissions = *perms
		}
		ujwt, err := uc.Encode(akp)
		must(err)
		seed, _ := ukp.Seed()
		b, err := jwt.FormatUserConfig(ujwt, seed)
		must(err)
		path := filepath.Join(dir, name+".creds")
		must(os.WriteFile(path, b, 0o600))
		return path
	}
	ap := natsserver.AgentPermissions("*")
	agentPerms := &jwt.Permissions{}
	agentPerms.Pub.Allow.Add(ap.Publish.Allow...)
	agentPerms.Sub.Allow.Add(ap.Subscribe.Allow...)
	serverCreds, agentCreds = user("slipway-server", nil), user("slipway-agents", agentPerms)

	resolver := &server.MemAccResolver{}
	must(resolver.Store(apub, accJWT))
	must(resolver.Store(spub, sysJWT))
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoSigs: true, NoLog: true,
		TrustedOperators: []*jwt.OperatorClaims{op}, AccountResolver: resolver, SystemAccount: spub})
	must(err)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the external NATS is not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL(), serverCreds, agentCreds
}
