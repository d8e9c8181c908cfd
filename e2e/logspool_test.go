package e2e

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// noisyDockerfile prints slow lines, then a burst of bulk lines, then slow
// lines again, each prefixed with tag.
func noisyDockerfile(base, tag string, slow, bulk int) string {
	return "FROM " + base + "\n" +
		fmt.Sprintf(`RUN for i in $(seq 1 %d); do echo "%s-slow-$i"; sleep 0.03; done; `, slow, tag) +
		fmt.Sprintf(`seq 1 %d | sed 's/^/%s-bulk-/'; `, bulk, tag) +
		fmt.Sprintf(`for i in $(seq 1 %d); do echo "%s-after-$i"; sleep 0.03; done`, slow, tag) + "\n"
}

// startExternalNATS starts a plain nats-server with JetStream, as an
// operator would run one: no Slipway credentials (the server's
// --nats-creds is for one that asks).
func startExternalNATS(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("external NATS not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// TestNATSStoppedMidBuild: the server uses an external NATS that stops
// mid-build. The build never waits for it; the lines written meanwhile
// wait in the agent's spool on the volume. When NATS comes back during
// the build they are sent then; when it comes back only after the
// deployment finished and the agent exited, the next build sends them.
// Either way the stored log is complete: every line exactly once, numbered
// without gaps, and the agent's log (agent.log) tells of the outage.
func TestNATSStoppedMidBuild(t *testing.T) {
	natsDir := t.TempDir()
	ns := startExternalNATS(t, natsDir, 0)
	u, err := url.Parse(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	restartNATS := func() {
		ns = startExternalNATS(t, natsDir, port)
	}

	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--nats", ns.ClientURL())
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	spool := filepath.Join(s.DataDir, "volumes", "spool", "logspool")
	checkSpool := func(want bool) {
		t.Helper()
		segs, _ := filepath.Glob(filepath.Join(spool, "spool-*.log"))
		if want && len(segs) == 0 {
			t.Errorf("no spool segment in %s while NATS is down", spool)
		} else if !want && len(segs) > 0 {
			t.Errorf("spool segments left after every line was sent: %v", segs)
		}
	}

	// NATS back while the build still runs.
	const slow, bulk = 150, 5000
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": noisyDockerfile(base, "one", slow, bulk)})
	s.addProject(t, "spool", dir)
	id := s.startDeploy(t, "spool", sha)
	s.waitLog(t, "spool", id, "one-slow-10")
	ns.Shutdown()
	testenv.WaitFor(t, 3*time.Minute, "the bulk lines reach the agent's stdout with NATS down", func() bool {
		return strings.Contains(s.agentLog("spool"), fmt.Sprintf("one-bulk-%d\n", bulk))
	})
	checkSpool(true)
	// The publisher's warnings reach the agent's own log.
	testenv.WaitFor(t, 30*time.Second, "the agent's log says the log stream went away", func() bool {
		return strings.Contains(s.agentLog("spool"), "log stream disconnected")
	})
	restartNATS()
	if d := s.waitFinished(t, "spool", id, 5*time.Minute); d.Status != "succeeded" {
		t.Fatalf("deployment %s, want succeeded\nagent:\n%s", d.Status, s.agentLog("spool"))
	}
	s.checkCompleteLog(t, id, "one", slow, bulk)
	checkSpool(false)

	// NATS back only after the deployment finished and the agent exited:
	// the next build of the project sends the leftovers.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": noisyDockerfile(base, "two", 50, 3000)})
	id2 := s.startDeploy(t, "spool", sha2)
	s.waitLog(t, "spool", id2, "two-slow-10")
	ns.Shutdown()
	if d := s.waitFinished(t, "spool", id2, 5*time.Minute); d.Status != "succeeded" {
		t.Fatalf("deployment %s, want succeeded\nagent:\n%s", d.Status, s.agentLog("spool"))
	}
	s.waitAsleep(t, "spool")
	checkSpool(true)
	restartNATS()
	sha3 := testenv.Commit(t, dir, map[string]string{"Dockerfile": noisyDockerfile(base, "three", 1, 1)})
	if d := s.deployWait(t, "spool", sha3); d.Status != "succeeded" {
		t.Fatalf("third deployment %s, want succeeded", d.Status)
	}
	s.checkCompleteLog(t, id2, "two", 50, 3000)
	checkSpool(false)
	if log := s.agentLog("spool"); !strings.Contains(log, "sending log lines left in the spool") {
		t.Errorf("the agent's log does not say it sent the spool's leftovers:\n%s", log)
	}
}

// startDeploy starts a deployment of commit and returns its id.
func (s *serverProc) startDeploy(t *testing.T, project, commit string) string {
	t.Helper()
	out, code := s.cli(t, "deploy", project, "--commit", commit)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, out)
	}
	return strings.TrimSpace(out)
}

// checkCompleteLog waits until the stored log of deployment id holds the
// last line of noisyDockerfile(tag, slow, bulk)'s output, then checks that
// it is numbered 1..N without gaps and holds every line of that output
// exactly once.
func (s *serverProc) checkCompleteLog(t *testing.T, id, tag string, slow, bulk int) {
	t.Helper()
	var text string
	testenv.WaitFor(t, 2*time.Minute, "the stored log of "+id+" holds its last line", func() bool {
		var stored []slipway.LogLine
		for {
			page, err := s.api().Logs(t.Context(), id, int64(len(stored)+1), 5000)
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, page...)
			if len(page) < 5000 {
				break
			}
		}
		var b strings.Builder
		for i, l := range stored {
			if l.N != int64(i+1) {
				t.Fatalf("stored line %d of %s has number %d: a gap or a duplicate", i+1, id, l.N)
			}
			b.WriteString(l.Text + "\n")
		}
		text = b.String()
		return strings.Contains(text, fmt.Sprintf("%s-after-%d\n", tag, slow))
	})
	for _, kind := range []struct {
		prefix string
		n      int
	}{{tag + "-slow-", slow}, {tag + "-bulk-", bulk}, {tag + "-after-", slow}} {
		for i := 1; i <= kind.n; i++ {
			if c := strings.Count(text, fmt.Sprintf("\n%s%d\n", kind.prefix, i)); c != 1 {
				t.Fatalf("%s%d appears %d times in the stored log of %s, want once", kind.prefix, i, c, id)
			}
		}
	}
}
