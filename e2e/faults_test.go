package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// TestFaultSuite is issue 5's fault suite (`make faults`): real processes,
// real buildah, real Temporal. Each case says what it injects and asserts
// the final state of every deployment it made; a bad-input corpus is sent
// to the webhook and the API. It ends with one line per category and the
// total:
//
//	faults injected N, survived N, deployments lost 0, stuck 0; bad inputs N, rejected N
//
// A deployment is lost when it disappears or never reaches a terminal
// state within its case's time limit, stuck when it is still queued or
// building then.
func TestFaultSuite(t *testing.T) {
	su := &faultSuite{}
	suiteStart := time.Now()

	// One server for every case that does not need special flags; the
	// server is killed last, and after its restart every deployment made so
	// far must still be there, ended as before.
	t.Run("server", func(t *testing.T) {
		const group = "server"
		addr := freeAddr(t)
		s := startServer(t, t.TempDir(), addr)
		base := testenv.BaseImage(t, testenv.Builder(t), s.Host)

		su.badInputs(t, s, base)

		su.fault(t, group, "delivery", "redelivered-100-times", func(t *testing.T, fc *faultCase) {
			dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY a.txt /a.txt\n", "a.txt": "a\n"})
			repoURL := "file://" + dir
			s.addProject(t, "redeliver", repoURL, "--webhook-secret", "rk")
			body := pushPayload(t, repoURL, "main", zeroSHA, sha)
			fc.inject("100 concurrent deliveries of one push with the same delivery id")
			answers := make([]hookAnswer, 100)
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					answers[i] = postHook(s.URL, hookHeaders("push", "redelivery-1", github.Sign("rk", body)), body)
				}()
			}
			close(gate)
			wg.Wait()
			created, ids := 0, map[string]int{}
			for _, a := range answers {
				if a.Err != nil || (a.Status != http.StatusAccepted && a.Status != http.StatusOK) {
					t.Errorf("a redelivery got %d %q (%v), want 202 or 200", a.Status, a.Message, a.Err)
					continue
				}
				if a.Status == http.StatusAccepted {
					created++
				}
				ids[a.Deployment]++
			}
			if len(ids) != 1 || created != 1 {
				t.Errorf("100 redeliveries named deployments %v with %d created (202), want one deployment, created once", ids, created)
			}
			ds := s.deployments(t, "redeliver")
			if len(ds) != 1 {
				t.Fatalf("%d deployments after 100 redeliveries of one delivery, want 1", len(ds))
			}
			if ids[ds[0].ID] != 100 {
				t.Errorf("%d of 100 answers named the stored deployment %s", ids[ds[0].ID], ds[0].ID)
			}
			fc.expect(s, "redeliver", ds[0].ID, 3*time.Minute, "succeeded")

			// Replays of that push under new delivery ids, one made now and
			// one whose push is past the webhook window (pushed_at two
			// hours ago): neither builds. A late delivery of a new commit
			// still builds.
			fc.inject("the same push replayed under a new delivery id")
			if a := postHook(s.URL, hookHeaders("push", "replayed-fresh", github.Sign("rk", body)), body); a.Err != nil || a.Status != http.StatusOK || a.Deployment != ds[0].ID {
				t.Errorf("replay under a new id = %d %q (%v), want 200 naming %s", a.Status, a.Message, a.Err, ds[0].ID)
			}
			stale := withPushedAt(t, body, time.Now().Add(-2*time.Hour))
			fc.inject("the same push, pushed two hours ago (past the 1h window), under a new delivery id")
			if a := postHook(s.URL, hookHeaders("push", "replayed-stale", github.Sign("rk", stale)), stale); a.Err != nil || a.Status != http.StatusOK ||
				a.Deployment != ds[0].ID || !strings.Contains(a.Message, "stale delivery") || !strings.Contains(a.Message, "past the webhook window of 1h0m0s") {
				t.Errorf("stale replay = %d %q (%v), want 200 saying the delivery is stale, naming %s", a.Status, a.Message, a.Err, ds[0].ID)
			}
			if n := len(s.deployments(t, "redeliver")); n != 1 {
				t.Errorf("%d deployments after replays of a deployed commit, want 1", n)
			}
			sha2 := testenv.Commit(t, dir, map[string]string{"a.txt": "b\n"})
			late := withPushedAt(t, pushPayload(t, repoURL, "main", sha, sha2), time.Now().Add(-2*time.Hour))
			fc.inject("a push of a new commit delivered two hours late")
			a := postHook(s.URL, hookHeaders("push", "late-new-commit", github.Sign("rk", late)), late)
			if a.Err != nil || a.Status != http.StatusAccepted || a.Deployment == "" {
				t.Fatalf("late delivery of a new commit = %d %q (%v), want 202 with a deployment", a.Status, a.Message, a.Err)
			}
			if d := fc.expect(s, "redeliver", a.Deployment, 3*time.Minute, "succeeded"); d.Commit != sha2 {
				t.Errorf("the late delivery built %s, want %s", d.Commit, sha2)
			}
		})

		su.fault(t, group, "machine", "agent-killed-mid-run", func(t *testing.T, fc *faultCase) {
			dir, sha := testenv.GitRepo(t, map[string]string{
				"Dockerfile": "FROM " + base + "\nRUN echo run-started && sleep 8 && echo run-done\n",
			})
			s.addProject(t, "fragile", dir)
			id := s.deployID(t, "fragile", sha)
			s.waitLog(t, "fragile", id, "run-started")
			n := killMachine(t, s, "fragile")
			fc.inject("kill -9 of the agent and its %d descendants mid-RUN", n-1)
			d := fc.expect(s, "fragile", id, 4*time.Minute, "succeeded")
			if logs, _ := s.cli(t, "logs", d.ID); !strings.Contains(logs, "run-done") {
				t.Errorf("the retried build's log lacks the end of the RUN step:\n%s", logs)
			}
		})

		su.fault(t, group, "volume", "volume-deleted", func(t *testing.T, fc *faultCase) {
			dockerfile := "FROM " + base + "\nCOPY stamp.txt /stamp.txt\n" +
				"RUN --mount=type=cache,target=/cache cat /stamp.txt >> /cache/seen && echo \"cache holds $(wc -l < /cache/seen) builds\"\n"
			dir, sha1 := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "stamp.txt": "one\n"})
			s.addProject(t, "vol", dir)
			first := fc.expect(s, "vol", s.deployID(t, "vol", sha1), 3*time.Minute, "succeeded")
			if l, _ := s.cli(t, "logs", first.ID); !strings.Contains(l, "cache holds 1 builds") {
				t.Fatalf("first build's output lacks the cache mount's count:\n%s", l)
			}
			s.waitAsleep(t, "vol")
			vol := filepath.Join(s.DataDir, "volumes", "vol")
			unmountAll(t, vol)
			if err := os.RemoveAll(vol); err != nil {
				t.Fatalf("delete the volume: %v", err)
			}
			fc.inject("the volume %s deleted between builds", vol)
			sha2 := testenv.Commit(t, dir, map[string]string{"stamp.txt": "two\n"})
			second := fc.expect(s, "vol", s.deployID(t, "vol", sha2), 3*time.Minute, "succeeded")
			detail := s.detail(t, second.ID)
			if len(detail.Steps) < 3 {
				t.Errorf("build on a new volume has steps %+v, want the Dockerfile's 3", detail.Steps)
			}
			for _, st := range detail.Steps[min(1, len(detail.Steps)):] {
				if st.Cached {
					t.Errorf("build on a new volume: step %q cached, want a cold build", st.Instruction)
				}
			}
			if l, _ := s.cli(t, "logs", second.ID); !strings.Contains(l, "cache holds 1 builds") {
				t.Errorf("build on a new volume did not start with an empty cache mount:\n%s", l)
			}
			digest, labels := imageConfig(t, s.Host, "vol", sha2)
			if digest != second.Digest || labels["slipway.commit"] != sha2 {
				t.Errorf("registry has vol:%s at %s with labels %v, want the deployment's digest %s and commit", sha2, digest, labels, second.Digest)
			}
		})

		su.fault(t, group, "delivery", "20-rapid-pushes", func(t *testing.T, fc *faultCase) {
			files := func(i int) map[string]string {
				return map[string]string{
					"Dockerfile": "FROM " + base + "\nCOPY v.txt /v.txt\nRUN echo built-$(cat /v.txt) && sleep 2\n",
					"v.txt":      fmt.Sprint(i),
				}
			}
			dir, sha := testenv.GitRepo(t, files(0))
			repoURL := "file://" + dir
			s.addProject(t, "rapid", repoURL, "--webhook-secret", "rp")
			shas := []string{sha}
			for i := 1; i < 20; i++ {
				shas = append(shas, testenv.Commit(t, dir, files(i)))
			}
			fc.inject("20 pushes to main, sent back to back")
			ids := make([]string, len(shas))
			before := zeroSHA
			for i, sha := range shas {
				body := pushPayload(t, repoURL, "main", before, sha)
				a := postHook(s.URL, hookHeaders("push", fmt.Sprintf("rapid-%d", i), github.Sign("rp", body)), body)
				if a.Err != nil || a.Status != http.StatusAccepted || a.Deployment == "" {
					t.Fatalf("push %d = %d %q (%v), want 202 with a deployment", i, a.Status, a.Message, a.Err)
				}
				ids[i], before = a.Deployment, sha
			}
			for i, id := range ids {
				if i == len(ids)-1 {
					d := fc.expect(s, "rapid", id, 3*time.Minute, "succeeded")
					if d.Commit != shas[i] {
						t.Errorf("the succeeded deployment built %s, want the last commit %s", d.Commit, shas[i])
					}
					continue
				}
				d := fc.expect(s, "rapid", id, 3*time.Minute, "superseded")
				if d.Digest != "" {
					t.Errorf("superseded deployment %s recorded digest %s", id, d.Digest)
				}
				if !containsAny(d.Error, ids[i+1:]) {
					t.Errorf("superseded deployment %s says %q, want a pointer to a newer deployment", id, d.Error)
				}
			}
			if n := len(s.deployments(t, "rapid")); n != 20 {
				t.Errorf("%d deployments of rapid, want 20", n)
			}
			waitNoBuilderBuild(t, s.DataDir)
		})

		su.fault(t, group, "repository", "symlinks-out-of-the-repository", func(t *testing.T, fc *faultCase) {
			dir, _ := testenv.GitRepo(t, map[string]string{"README": "hostile\n"})
			for _, l := range []struct{ name, target string }{{"Dockerfile", "/etc/passwd"}, {"ctx", "/etc"}} {
				if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
					t.Fatal(err)
				}
			}
			testenv.Git(t, dir, "add", "--all")
			testenv.Git(t, dir, "commit", "--quiet", "-m", "symlinks out")
			sha := testenv.Git(t, dir, "rev-parse", "HEAD")
			for _, c := range []struct{ project, flag, what string }{
				{"symlink-dockerfile", "--dockerfile=Dockerfile", "Dockerfile"},
				{"symlink-context", "--context=ctx", "context"},
			} {
				s.addProject(t, c.project, dir, c.flag)
				fc.inject("a commit whose %s is a symlink out of the repository", c.what)
				d := fc.expect(s, c.project, s.deployID(t, c.project, sha), 3*time.Minute, "failed")
				if !strings.Contains(d.Error, "points outside the repository") {
					t.Errorf("%s: error %q, want it to say the %s points outside the repository", c.project, d.Error, c.what)
				}
				if logs, _ := s.cli(t, "logs", d.ID); strings.Contains(logs, "root:x:0:0") || strings.Contains(logs, "STEP 1") {
					t.Errorf("%s: the build read through the symlink:\n%s", c.project, logs)
				}
			}
		})

		su.fault(t, group, "repository", "symlinks-inside-the-context", func(t *testing.T, fc *faultCase) {
			// A file on the builder's disk that no build may read.
			marker := fmt.Sprintf("HOST-SECRET-%d", time.Now().UnixNano())
			hostFile := filepath.Join(t.TempDir(), "host-secret")
			if err := os.WriteFile(hostFile, []byte(marker+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir, _ := testenv.GitRepo(t, map[string]string{"README": "hostile\n"})
			for _, l := range []struct{ name, target string }{{"secret-link", hostFile}, {"host-dir", filepath.Dir(hostFile)}} {
				if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				project, dockerfile, want, what string
				status                          string
			}{
				{"copy-symlink", "FROM " + base + "\nCOPY secret-link /x\nRUN cat /x\n", "secret-link, a symlink to " + hostFile + ", which points outside the repository", "COPY of a symlink out of the context", "failed"},
				{"copy-dir-with-symlinks", "FROM " + base + "\nCOPY . /ctx/\nRUN cat /ctx/secret-link /ctx/host-dir/host-secret || echo no-host-file\n", "", "COPY . of a context holding symlinks out of it", "succeeded"},
				{"mount-symlink", "FROM " + base + "\nRUN --mount=type=bind,source=secret-link,target=/m cat /m\n", "points outside the repository", "RUN --mount of a symlink out of the context", "failed"},
				{"mount-symlinked-dir", "FROM " + base + "\nRUN --mount=type=bind,source=host-dir,target=/m cat /m/host-secret\n", "points outside the repository", "RUN --mount of a symlinked directory out of the context", "failed"},
				{"mount-from-stage", "FROM " + base + " AS s\nRUN ln -s " + hostFile + " /leak\nFROM " + base + "\nRUN --mount=type=bind,from=s,source=leak,target=/m cat /m\n", "no such file or directory", "RUN --mount from a stage holding a symlink to the host (the builder resolves it inside the stage)", "failed"},
			} {
				sha := testenv.Commit(t, dir, map[string]string{"Dockerfile": c.dockerfile})
				s.addProject(t, c.project, dir)
				fc.inject("%s", c.what)
				d := fc.expect(s, c.project, s.deployID(t, c.project, sha), 3*time.Minute, c.status)
				if !strings.Contains(d.Error, c.want) || strings.Count(d.Error, "copier.request") > 0 {
					t.Errorf("%s: error %q, want it to say %q (and no dump of buildah's request)", c.project, d.Error, c.want)
				}
				logs, _ := s.cli(t, "logs", d.ID)
				if strings.Contains(logs, marker) || strings.Contains(d.Error, marker) {
					t.Errorf("%s: the build read the host's file:\n%s", c.project, logs)
				}
				if c.status == "succeeded" && !strings.Contains(logs, "no-host-file") {
					t.Errorf("%s: the symlinks were not copied as dangling links:\n%s", c.project, logs)
				}
			}
		})

		su.fault(t, group, "output", "giant-binary-output", func(t *testing.T, fc *faultCase) {
			// 6 MB of random bytes (NULs, escapes, invalid UTF-8, ~25k
			// "lines"), then a 2 MB line without a newline, then a marker.
			dir, sha := testenv.GitRepo(t, map[string]string{
				"Dockerfile": "FROM " + base + "\nRUN head -c 6000000 /dev/urandom && head -c 2000000 /dev/zero | tr '\\0' a && echo && echo giant-output-done\n",
			})
			s.addProject(t, "giant", dir)
			fc.inject("a RUN step writing 6 MB of random binary output and a 2 MB line")
			d := fc.expect(s, "giant", s.deployID(t, "giant", sha), 5*time.Minute, "succeeded")
			// The agent's stdout (agent.log) gets every line the publisher
			// numbered, as "[step] text"; the build's output is step "build".
			al := s.agentLog("giant")
			printed := strings.Count("\n"+al, "\n[build] ")
			var lines, buildLines, longest, stored, aBytes int
			var sawDone bool
			read := func(logf func(string, ...any)) {
				lines, buildLines, longest, stored, aBytes, sawDone = 0, 0, 0, 0, 0, false
				for after := -1; ; {
					vars := map[string]any{"id": d.ID, "after": after}
					if after < 0 {
						vars["after"] = nil
					}
					a := s.graphql(t, `query($id: ID!, $after: Int) { deployment(id: $id) { logs(after: $after, first: 5000) { n text step } } }`, vars)
					var data struct {
						Deployment struct {
							Logs []struct {
								N    int
								Text string
								Step *string
							}
						}
					}
					if a.Status != http.StatusOK || len(a.Errors) > 0 || json.Unmarshal(a.Data, &data) != nil {
						t.Fatalf("read the log after line %d: %d %s", after, a.Status, truncate(a.Raw, 300))
					}
					if len(data.Deployment.Logs) == 0 {
						return
					}
					for _, l := range data.Deployment.Logs {
						if l.N != after+1 && !(after == -1 && l.N <= 1) {
							t.Fatalf("log line %d follows line %d: a gap", l.N, after)
						}
						after = l.N
						lines++
						if l.Step != nil && *l.Step == "build" {
							buildLines++
						}
						longest = max(longest, len(l.Text))
						if !utf8.ValidString(l.Text) {
							t.Fatalf("log line %d is not valid UTF-8: %q", l.N, truncate(l.Text, 100))
						}
						// The marker alone, not the STEP line quoting the RUN instruction.
						sawDone = sawDone || l.Text == "giant-output-done"
						stored += len(l.Text)
						if strings.Count(l.Text, "a") == len(l.Text) && len(l.Text) > 1000 {
							aBytes += len(l.Text)
						}
						if logf != nil && (strings.HasPrefix(l.Text, "[slipway]") || lines < 8) {
							logf("line %d (%d bytes): %s", l.N, len(l.Text), truncate(l.Text, 200))
						}
					}
				}
			}
			// The deployment can succeed before the archiver has stored the
			// last lines: wait (generously) for them rather than read early.
			deadline := time.Now().Add(3 * time.Minute)
			for read(nil); buildLines < printed && time.Now().Before(deadline); read(nil) {
				time.Sleep(time.Second)
			}
			read(t.Logf)
			t.Logf("giant output stored as %d lines, %d of them the build's (%d bytes, %d of them the 2 MB line), the longest %d bytes; the agent's stdout got %d build lines, %d bytes",
				lines, buildLines, stored, aBytes, longest, printed, len(al))
			// The 2 MB line follows random bytes without a newline: all its
			// 16 KiB pieces but the first are pure "a".
			if buildLines != printed || !sawDone || printed < 20000 || aBytes < 2_000_000-2*(16<<10) || longest > 16<<10 {
				t.Errorf("giant output: %d build lines stored, the agent printed %d; longest %d bytes, %d bytes of the 2 MB line, end marker seen %v; want every line stored, split at 16 KiB, through to the end",
					buildLines, printed, longest, aBytes, sawDone)
			}
		})

		// Last: the restarted server must still hold every deployment above.
		su.fault(t, group, "server", "server-killed-mid-build", func(t *testing.T, fc *faultCase) {
			dir, sha := testenv.GitRepo(t, map[string]string{
				"Dockerfile": "FROM " + base + "\nRUN echo sleeping && sleep 6 && echo woke-up-last-line\n",
			})
			s.addProject(t, "slow", dir)
			id := s.deployID(t, "slow", sha)
			s.waitLog(t, "slow", id, "sleeping")
			s.kill9(t)
			fc.inject("kill -9 of the server mid-RUN, restart on the same data directory and port")
			s = startServer(t, s.DataDir, addr)
			d := fc.expect(s, "slow", id, 5*time.Minute, "succeeded")
			if logs, _ := s.cli(t, "logs", d.ID); !strings.Contains(logs, "woke-up-last-line") || !strings.Contains(logs, "pushed ") {
				t.Errorf("the log after the restart is incomplete (want the RUN step's last line and the push):\n%s", logs)
			}
			su.recheck(t, s, group)
		})
	})

	// A server whose registry sits behind a proxy the suite can cut, and
	// whose volumes are always "full".
	t.Run("registry", func(t *testing.T) {
		const group = "registry"
		reg := testenv.Registry(t)
		proxy := newTCPProxy(t, reg)
		// An external registry that asks for a login, over plain HTTP.
		authFile := filepath.Join(t.TempDir(), "auth.json")
		if err := buildah.WriteAuthFile(authFile, proxy.addr, "ci", testenv.RegistryToken); err != nil {
			t.Fatal(err)
		}
		s := startServer(t, t.TempDir(), "127.0.0.1:0", "--registry", proxy.addr, "--registry-insecure", "--registry-auth-file", authFile, "--reset-threshold", "0.001")
		// The builds pull it through the proxy too: their login is for
		// the proxy's address.
		base := strings.Replace(testenv.BaseImage(t, testenv.Builder(t), reg), reg, proxy.addr, 1)

		su.fault(t, group, "registry", "registry-down-during-push", func(t *testing.T, fc *faultCase) {
			dir, sha := testenv.GitRepo(t, map[string]string{
				"Dockerfile": "FROM " + base + "\nRUN echo run-started && sleep 3 && echo run-done\n",
			})
			s.addProject(t, "pushy", dir)
			id := s.deployID(t, "pushy", sha)
			s.waitLog(t, "pushy", id, "run-started")
			proxy.down()
			down := time.Now()
			fc.inject("the registry unreachable (connections refused) from mid-RUN until 5 s after a push failed")
			s.waitLog(t, "pushy", id, "push failed")
			// Part of the fault: the registry stays down 5 s after the
			// failed push, while the agent retries.
			time.Sleep(5 * time.Second)
			proxy.up(t)
			t.Logf("registry was down for %s", time.Since(down).Round(time.Millisecond))
			d := fc.expect(s, "pushy", id, 3*time.Minute, "succeeded")
			digest, labels := imageConfig(t, reg, "pushy", sha)
			if digest != d.Digest || labels["slipway.deployment"] != d.ID {
				t.Errorf("registry has pushy:%s at %s (labels %v), want the deployment's digest %s", sha, digest, labels, d.Digest)
			}
		})

		su.fault(t, group, "registry", "registry-stays-down", func(t *testing.T, fc *faultCase) {
			dir, sha := testenv.GitRepo(t, map[string]string{
				"Dockerfile": "FROM " + base + "\nRUN echo run-started && sleep 2 && echo run-done\n",
			})
			s.addProject(t, "pushdown", dir)
			id := s.deployID(t, "pushdown", sha)
			s.waitLog(t, "pushdown", id, "run-started")
			proxy.down()
			defer proxy.up(t)
			down := time.Now()
			fc.inject("the registry unreachable from mid-RUN until the deployment ends")
			d := fc.expect(s, "pushdown", id, 4*time.Minute, "failed")
			t.Logf("failed %s after the registry went down: %s (step %q)", time.Since(down).Round(time.Second), d.Error, d.FailedStep)
			if d.FailedStep != "push" || !strings.HasPrefix(d.Error, "push to "+proxy.addr+" failed") || strings.Count(d.Error, "\n") > 0 {
				t.Errorf("failed step %q, error %q; want step push and one line saying the push to %s failed", d.FailedStep, d.Error, proxy.addr)
			}
			if !strings.Contains(d.Error, "push") || !strings.Contains(d.Error, proxy.addr) || !strings.Contains(d.Error, "connection refused") {
				t.Errorf("error %q, want it to say the push to %s failed with connection refused", d.Error, proxy.addr)
			}
			// Retried with backoff: the attempts' failures come further and
			// further apart.
			a := s.graphql(t, `query($id: ID!) { deployment(id: $id) { logs(search: "push failed", first: 100) { n time text } } }`, map[string]any{"id": id})
			var data struct {
				Deployment struct {
					Logs []struct {
						N    int
						Time time.Time
						Text string
					}
				}
			}
			if a.Status != http.StatusOK || len(a.Errors) > 0 || json.Unmarshal(a.Data, &data) != nil {
				t.Fatalf("search the log: %d %s", a.Status, truncate(a.Raw, 300))
			}
			var gaps []time.Duration
			for i := 1; i < len(data.Deployment.Logs); i++ {
				gaps = append(gaps, data.Deployment.Logs[i].Time.Sub(data.Deployment.Logs[i-1].Time).Round(10*time.Millisecond))
			}
			t.Logf("%d push attempts failed, %v apart", len(data.Deployment.Logs), gaps)
			if len(gaps) < 2 || gaps[len(gaps)-1] < gaps[0]+2*time.Second {
				logs, _ := s.cli(t, "logs", id)
				t.Errorf("the push was not retried with backoff (failures %v apart):\n%s", gaps, logs)
			}
		})

		su.fault(t, group, "volume", "volume-over-threshold", func(t *testing.T, fc *faultCase) {
			dir, sha1 := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY f.txt /f.txt\nRUN cat /f.txt\n", "f.txt": "1\n"})
			s.addProject(t, "full", dir)
			fc.inject("a volume past its usage threshold (--reset-threshold 0.001)")
			first := fc.expect(s, "full", s.deployID(t, "full", sha1), 3*time.Minute, "succeeded")
			if l, _ := s.cli(t, "logs", first.ID); !strings.Contains(l, "resetting the build cache") {
				t.Errorf("the build on a full volume did not reset the build cache:\n%s", l)
			}
			sha2 := testenv.Commit(t, dir, map[string]string{"f.txt": "2\n"})
			second := fc.expect(s, "full", s.deployID(t, "full", sha2), 3*time.Minute, "succeeded")
			if digest, _ := imageConfig(t, reg, "full", sha2); digest != second.Digest {
				t.Errorf("registry has full:%s at %s, want the deployment's digest %s", sha2, digest, second.Digest)
			}
		})

		su.recheck(t, s, group)
	})

	su.report(t, time.Since(suiteStart))
}

const zeroSHA = "0000000000000000000000000000000000000000"

// withPushedAt returns the push payload body with repository.pushed_at set
// to at.
func withPushedAt(t *testing.T, body []byte, at time.Time) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	p["repository"].(map[string]any)["pushed_at"] = at.Unix()
	return must(json.Marshal(p))
}

// faultSuite tallies what TestFaultSuite injected and how it ended.
type faultSuite struct {
	mu      sync.Mutex
	cats    []*faultCategory
	cases   []caseResult
	tracked []trackedDeployment
}

// faultCategory is one line of the suite's summary.
type faultCategory struct {
	name                     string
	injected, survived       int
	deployments, lost, stuck int
	badInputs, rejected      int
}

type caseResult struct {
	name, category string
	took           time.Duration
	passed         bool
}

// trackedDeployment is a deployment a case saw end, with how it ended.
type trackedDeployment struct {
	group, category, project, id, status string
}

func (su *faultSuite) category(name string) *faultCategory {
	for _, c := range su.cats {
		if c.name == name {
			return c
		}
	}
	c := &faultCategory{name: name}
	su.cats = append(su.cats, c)
	return c
}

// faultCase is what one fault case reports to the suite.
type faultCase struct {
	t        *testing.T
	su       *faultSuite
	group    string
	cat      string
	injected int
}

// inject records and logs one fault the case injects.
func (fc *faultCase) inject(format string, args ...any) {
	fc.t.Helper()
	fc.t.Logf("INJECT: "+format, args...)
	fc.su.mu.Lock()
	defer fc.su.mu.Unlock()
	fc.injected++
}

// fault runs one fault case as a subtest: the faults it injects count as
// survived when the subtest passes.
func (su *faultSuite) fault(t *testing.T, group, category, name string, f func(t *testing.T, fc *faultCase)) {
	t.Helper()
	start := time.Now()
	fc := &faultCase{su: su, group: group, cat: category}
	ok := t.Run(name, func(t *testing.T) {
		fc.t = t
		f(t, fc)
	})
	if fc.t == nil {
		return // left out by -run: nothing injected, nothing to count
	}
	su.mu.Lock()
	defer su.mu.Unlock()
	c := su.category(category)
	n := max(fc.injected, 1) // a case that failed before injecting still failed its fault
	c.injected += n
	if ok {
		c.survived += n
	}
	su.cases = append(su.cases, caseResult{name: name, category: category, took: time.Since(start), passed: ok})
}

// expect waits up to within for deployment id of project to end, counts it
// lost or stuck if it does not, and checks that it ended want.
func (fc *faultCase) expect(s *serverProc, project, id string, within time.Duration, want string) deploymentJSON {
	t := fc.t
	t.Helper()
	deadline := time.Now().Add(within)
	lose := func(stuck bool, format string, args ...any) {
		t.Helper()
		fc.su.mu.Lock()
		c := fc.su.category(fc.cat)
		c.deployments++
		if stuck {
			c.stuck++
		} else {
			c.lost++
		}
		fc.su.mu.Unlock()
		logs, _ := s.cli(t, "logs", id)
		t.Fatalf(format+"\nlogs:\n%s\nagent log:\n%s\nserver output:\n%s", append(args, logs, s.agentLog(project), s.out)...)
	}
	for {
		var d *deploymentJSON
		for _, x := range s.deployments(t, project) {
			if x.ID == id {
				d = &x
				break
			}
		}
		switch {
		case d == nil:
			lose(false, "LOST: deployment %s of %s is not stored", id, project)
		case terminal(d.Status):
			fc.su.mu.Lock()
			fc.su.category(fc.cat).deployments++
			fc.su.tracked = append(fc.su.tracked, trackedDeployment{group: fc.group, category: fc.cat, project: project, id: id, status: d.Status})
			fc.su.mu.Unlock()
			t.Logf("deployment %s of %s ended %s", id, project, d.Status)
			if d.Status != want {
				logs, _ := s.cli(t, "logs", id)
				t.Errorf("deployment %s of %s = %s (%s at %s), want %s\nlogs:\n%s\nagent log:\n%s", id, project, d.Status, d.Error, d.FailedStep, want, logs, s.agentLog(project))
			}
			return *d
		case time.Now().After(deadline):
			lose(d.Status == "queued" || d.Status == "building",
				"deployment %s of %s still %s after %s (stuck or lost)", id, project, d.Status, within)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func terminal(status string) bool {
	switch status {
	case "succeeded", "failed", "cancelled", "superseded":
		return true
	}
	return false
}

// recheck asserts that every deployment the group's cases saw end is still
// stored, ended the same way.
func (su *faultSuite) recheck(t *testing.T, s *serverProc, group string) {
	t.Helper()
	su.mu.Lock()
	var mine []trackedDeployment
	for _, d := range su.tracked {
		if d.group == group {
			mine = append(mine, d)
		}
	}
	su.mu.Unlock()
	stored := map[string]map[string]string{}
	for _, d := range mine {
		if stored[d.project] == nil {
			stored[d.project] = map[string]string{}
			for _, x := range s.deployments(t, d.project) {
				stored[d.project][x.ID] = x.Status
			}
		}
		status, ok := stored[d.project][d.id]
		switch {
		case !ok:
			su.mu.Lock()
			su.category(d.category).lost++
			su.mu.Unlock()
			t.Errorf("LOST: deployment %s of %s (ended %s) is no longer stored", d.id, d.project, d.status)
		case status != d.status:
			t.Errorf("deployment %s of %s ended %s, now says %s", d.id, d.project, d.status, status)
		}
	}
	t.Logf("%s: all %d deployments still stored with their final state", group, len(mine))
}

// report prints the summary: one line per category, then the total, and
// fails the test if a fault was not survived, a deployment was lost or
// stuck, or a bad input was not rejected.
func (su *faultSuite) report(t *testing.T, took time.Duration) {
	t.Helper()
	su.mu.Lock()
	defer su.mu.Unlock()
	var total faultCategory
	var lines []string
	for _, c := range su.cases {
		verdict := "survived"
		if !c.passed {
			verdict = "FAILED"
		}
		lines = append(lines, fmt.Sprintf("case %s (%s): %s in %s", c.name, c.category, verdict, c.took.Round(100*time.Millisecond)))
	}
	for _, c := range su.cats {
		total.injected += c.injected
		total.survived += c.survived
		total.deployments += c.deployments
		total.lost += c.lost
		total.stuck += c.stuck
		total.badInputs += c.badInputs
		total.rejected += c.rejected
		if c.badInputs > 0 {
			lines = append(lines, fmt.Sprintf("category %s: bad inputs %d, rejected %d", c.name, c.badInputs, c.rejected))
		} else {
			lines = append(lines, fmt.Sprintf("category %s: faults injected %d, survived %d, deployments %d, lost %d, stuck %d", c.name, c.injected, c.survived, c.deployments, c.lost, c.stuck))
		}
	}
	lines = append(lines, fmt.Sprintf("fault suite: %d deployments in %s", total.deployments, took.Round(time.Second)))
	sum := fmt.Sprintf("faults injected %d, survived %d, deployments lost %d, stuck %d; bad inputs %d, rejected %d",
		total.injected, total.survived, total.lost, total.stuck, total.badInputs, total.rejected)
	for _, l := range append(lines, sum) {
		t.Log(l)
		fmt.Println(l)
	}
	if total.injected == 0 || total.survived != total.injected || total.lost != 0 || total.stuck != 0 || total.rejected != total.badInputs {
		t.Errorf("the fault suite failed: %s", sum)
	}
}

// deployID starts a deployment of commit with `slipway deploy` and returns
// its id.
func (s *serverProc) deployID(t *testing.T, project, commit string) string {
	t.Helper()
	out, code := s.cli(t, "deploy", project, "--commit", commit)
	id := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(id, "d-") {
		t.Fatalf("slipway deploy %s --commit %s: exit %d:\n%s", project, commit, code, out)
	}
	return id
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// waitNoBuilderBuild fails t if a buildah build on dataDir's volumes is
// still running 5 s after every deployment ended.
func waitNoBuilderBuild(t *testing.T, dataDir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n := builderBuilds(dataDir); n != 0; n = builderBuilds(dataDir) {
		if time.Now().After(deadline) {
			t.Errorf("%d orphan buildah build processes after every deployment ended", n)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tcpProxy forwards a loopback port to target; down refuses connections
// (and cuts open ones) until up.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{addr: "127.0.0.1:0", target: target, conns: map[net.Conn]bool{}}
	p.up(t)
	p.addr = p.ln.Addr().String()
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *tcpProxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	c.Close()
	u.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// hookAnswer is the webhook's answer to one request; Err is set when there
// was no HTTP answer.
type hookAnswer struct {
	Status     int
	Message    string `json:"message"`
	Deployment string `json:"deployment"`
	Raw        string
	Err        error
}

func hookHeaders(event, delivery, signature string) map[string]string {
	h := map[string]string{"Content-Type": "application/json"}
	if event != "" {
		h["X-GitHub-Event"] = event
	}
	if delivery != "" {
		h["X-GitHub-Delivery"] = delivery
	}
	if signature != "" {
		h["X-Hub-Signature-256"] = signature
	}
	return h
}

// postHook posts body to the server's webhook with headers (an empty value
// leaves a header out). It is safe to call from any goroutine.
func postHook(serverURL string, headers map[string]string, body []byte) hookAnswer {
	return doHook(http.MethodPost, serverURL, headers, body)
}

func doHook(method, serverURL string, headers map[string]string, body []byte) hookAnswer {
	req, err := http.NewRequest(method, serverURL+"/webhooks/github", bytes.NewReader(body))
	if err != nil {
		return hookAnswer{Err: err}
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return hookAnswer{Err: err}
	}
	defer resp.Body.Close()
	return readHookAnswer(resp)
}

func readHookAnswer(resp *http.Response) hookAnswer {
	raw, _ := io.ReadAll(resp.Body)
	var a hookAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		a.Err = fmt.Errorf("answer is not JSON: %q", raw)
	}
	a.Status, a.Raw = resp.StatusCode, string(raw)
	return a
}

// rawHook sends a webhook request over a bare TCP connection, declaring a
// Content-Length of declared but sending body and then closing its side:
// for bodies the server must stop reading (too large) or that end early
// (truncated in transit).
func rawHook(host string, headers map[string]string, declared int, body []byte) hookAnswer {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return hookAnswer{Err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	var b strings.Builder
	fmt.Fprintf(&b, "POST /webhooks/github HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", host, declared)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	go func() {
		// The server may answer and close before reading it all.
		_, _ = io.WriteString(c, b.String())
		_, _ = c.Write(body)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return hookAnswer{Err: err}
	}
	defer resp.Body.Close()
	return readHookAnswer(resp)
}

// gqlAnswer is the API's answer to one request.
type gqlAnswer struct {
	Status int
	Raw    string
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (s *serverProc) graphqlRaw(t *testing.T, method, contentType string, body []byte) gqlAnswer {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+"/graphql", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s /graphql: %v", method, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a gqlAnswer
	_ = json.Unmarshal(raw, &a)
	a.Status, a.Raw = resp.StatusCode, string(raw)
	return a
}

func (s *serverProc) graphql(t *testing.T, query string, vars map[string]any) gqlAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return s.graphqlRaw(t, http.MethodPost, "application/json", body)
}

// stored is what the server holds: each project with its deployment count.
func (s *serverProc) stored(t *testing.T) map[string]int {
	t.Helper()
	a := s.graphql(t, `{ projects { name deployments(first: 1000) { id } } }`, nil)
	var data struct {
		Projects []struct {
			Name        string
			Deployments []struct{ ID string }
		}
	}
	if a.Status != http.StatusOK || len(a.Errors) > 0 || json.Unmarshal(a.Data, &data) != nil {
		t.Fatalf("list projects and deployments: %d %s", a.Status, a.Raw)
	}
	out := map[string]int{}
	for _, p := range data.Projects {
		out[p.Name] = len(p.Deployments)
	}
	return out
}

// badInputs sends the bad-input corpus to the webhook and the API: every
// input must be refused with a 4xx and a message (the CLI: a non-zero exit
// and the message), and nothing may be stored. Unknown webhook events are
// the exception the issue allows: 202 with a message saying the event is
// ignored.
func (su *faultSuite) badInputs(t *testing.T, s *serverProc, base string) {
	t.Run("bad-inputs", func(t *testing.T) {
		dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\n"})
		repoURL := "file://" + dir
		const secret = "inputs-secret"
		s.addProject(t, "inputs", repoURL, "--webhook-secret", secret)
		before := s.stored(t)
		start := time.Now()
		record := func(cat, name string, rejected bool, format string, args ...any) {
			t.Helper()
			detail := fmt.Sprintf(format, args...)
			su.mu.Lock()
			c := su.category(cat)
			c.badInputs++
			if rejected {
				c.rejected++
			}
			su.mu.Unlock()
			if rejected {
				t.Logf("%s: %s: rejected: %s", cat, name, detail)
			} else {
				t.Errorf("%s: %s: NOT REJECTED: %s", cat, name, detail)
			}
		}

		// The webhook.
		valid := pushPayload(t, repoURL, "main", zeroSHA, sha)
		withRef := func(ref string) []byte {
			var p map[string]any
			_ = json.Unmarshal(valid, &p)
			p["ref"] = ref
			b, _ := json.Marshal(p)
			return b
		}
		withAfter := func(after string) []byte {
			var p map[string]any
			_ = json.Unmarshal(valid, &p)
			p["after"] = after
			b, _ := json.Marshal(p)
			return b
		}
		signed := func(event string, body []byte) map[string]string {
			return hookHeaders(event, "", github.Sign(secret, body))
		}
		set := func(h map[string]string, k, v string) map[string]string {
			h[k] = v
			return h
		}
		// A signed push for a repository no project is registered for is
		// answered as a wrong signature is.
		unregistered := pushPayload(t, "https://github.com/someone/unregistered.git", "main", zeroSHA, sha)
		manyCommits := func() []byte {
			var p map[string]any
			_ = json.Unmarshal(valid, &p)
			p["commits"] = make([]any, github.MaxCommits+1)
			b, _ := json.Marshal(p)
			return b
		}()
		oversized := bytes.Repeat([]byte(" "), github.DefaultMaxBodyBytes+4096)
		copy(oversized, valid)
		type hookCase struct {
			name       string
			method     string
			headers    map[string]string
			body       []byte
			raw        bool // over bare TCP, with declared Content-Length
			declared   int
			wantStatus int
		}
		cases := []hookCase{
			{name: "missing signature", headers: hookHeaders("push", "", ""), body: valid, wantStatus: 401},
			{name: "signature with the wrong secret", headers: hookHeaders("push", "", github.Sign("not-the-secret", valid)), body: valid, wantStatus: 401},
			{name: "malformed signature", headers: hookHeaders("push", "", "sha256=zz"), body: valid, wantStatus: 401},
			{name: "sha1 signature only", headers: hookHeaders("push", "", "sha1=0123456789abcdef0123456789abcdef01234567"), body: valid, wantStatus: 401},
			{name: "signature of another body", headers: signed("push", withRef("refs/heads/other")), body: valid, wantStatus: 401},
			{name: "unregistered repository, signed", headers: signed("push", unregistered), body: unregistered, wantStatus: 401},
			{name: "10,001 commits", headers: signed("push", manyCommits), body: manyCommits, wantStatus: 413},
			{name: "Content-Type text/plain", headers: set(signed("push", valid), "Content-Type", "text/plain"), body: valid, wantStatus: 415},
			{name: "Content-Type multipart/form-data", headers: set(signed("push", valid), "Content-Type", "multipart/form-data; boundary=x"), body: valid, wantStatus: 415},
			{name: "no Content-Type", headers: set(signed("push", valid), "Content-Type", ""), body: valid, wantStatus: 415},
			{name: "form-encoded without payload", headers: set(signed("push", []byte("x=1")), "Content-Type", "application/x-www-form-urlencoded"), body: []byte("x=1"), wantStatus: 400},
			{name: "oversized body (25 MiB + 4 KiB)", headers: signed("push", oversized), body: oversized, raw: true, declared: len(oversized), wantStatus: 413},
			{name: "truncated body (signed as sent)", headers: signed("push", valid[:len(valid)/2]), body: valid[:len(valid)/2], wantStatus: 400},
			{name: "truncated in transit", headers: signed("push", valid), body: valid[:len(valid)/2], raw: true, declared: len(valid), wantStatus: 400},
			{name: "invalid JSON", headers: signed("push", []byte("{not json")), body: []byte("{not json"), wantStatus: 400},
			{name: "JSON array", headers: signed("push", []byte("[1,2]")), body: []byte("[1,2]"), wantStatus: 400},
			{name: "empty body", headers: signed("push", nil), body: nil, wantStatus: 400},
			{name: "binary body", headers: signed("push", []byte("\x00\xff\xfe\x01")), body: []byte("\x00\xff\xfe\x01"), wantStatus: 400},
			{name: "missing event header", headers: signed("", valid), body: valid, wantStatus: 400},
			{name: "missing delivery header", headers: signed("push", valid), body: valid, wantStatus: 400},
			{name: "delivery id with a space and a tab", headers: set(signed("push", valid), "X-GitHub-Delivery", "a b\tc"), body: valid, wantStatus: 400},
			{name: "delivery id of 500 characters", headers: set(signed("push", valid), "X-GitHub-Delivery", strings.Repeat("d", 500)), body: valid, wantStatus: 400},
			{name: "unknown event, signed (202 ignored)", headers: signed("gollum", valid), body: valid, wantStatus: 202},
			{name: "unknown event, unsigned", headers: hookHeaders("gollum", "", ""), body: valid, wantStatus: 401},
			{name: "ref refs/heads/../../x", headers: signed("push", withRef("refs/heads/../../x")), body: withRef("refs/heads/../../x"), wantStatus: 400},
			{name: "ref with a control character", headers: signed("push", withRef("refs/heads/ma\x01in")), body: withRef("refs/heads/ma\x01in"), wantStatus: 400},
			{name: "ref with a newline", headers: signed("push", withRef("refs/heads/main\nx")), body: withRef("refs/heads/main\nx"), wantStatus: 400},
			{name: "ref of 300 characters", headers: signed("push", withRef("refs/heads/"+strings.Repeat("a", 300))), body: withRef("refs/heads/" + strings.Repeat("a", 300)), wantStatus: 400},
			{name: "ref starting with a dash", headers: signed("push", withRef("-uoption")), body: withRef("-uoption"), wantStatus: 400},
			{name: "after is not a commit", headers: signed("push", withAfter("../../etc/passwd")), body: withAfter("../../etc/passwd"), wantStatus: 400},
			{name: "GET", method: http.MethodGet, headers: signed("push", nil), wantStatus: 405},
		}
		for i, c := range cases {
			if c.name != "missing delivery header" && c.headers["X-GitHub-Delivery"] == "" {
				c.headers["X-GitHub-Delivery"] = fmt.Sprintf("bad-input-%d", i)
			}
			var a hookAnswer
			switch {
			case c.raw:
				a = rawHook(s.Host, c.headers, c.declared, c.body)
			case c.method != "":
				a = doHook(c.method, s.URL, c.headers, c.body)
			default:
				a = postHook(s.URL, c.headers, c.body)
			}
			ok := a.Err == nil && a.Status == c.wantStatus && a.Message != "" && a.Deployment == "" &&
				(c.wantStatus != 202 || strings.Contains(a.Message, "ignored"))
			record("webhook input", c.name, ok, "%d %q (want %d with a message; err %v)", a.Status, a.Message, c.wantStatus, a.Err)
		}

		// The API, through the CLI: project add and deploy with hostile
		// input.
		for _, c := range []struct {
			name string
			args []string
			want string
		}{
			{"dockerfile ../../etc/passwd", []string{"project", "add", "evil-a", "--repo", repoURL, "--dockerfile", "../../etc/passwd"}, "invalid dockerfile"},
			{"dockerfile /etc/passwd", []string{"project", "add", "evil-b", "--repo", repoURL, "--dockerfile", "/etc/passwd"}, "invalid dockerfile"},
			{"dockerfile with an escape character", []string{"project", "add", "evil-q", "--repo", repoURL, "--dockerfile", "Docker\x1b[2Jfile"}, "invalid dockerfile"},
			{"context /etc", []string{"project", "add", "evil-c", "--repo", repoURL, "--context", "/etc"}, "invalid context"},
			{"context ../..", []string{"project", "add", "evil-d", "--repo", repoURL, "--context", "../.."}, "invalid context"},
			{"name with uppercase", []string{"project", "add", "Evil", "--repo", repoURL}, "invalid project name"},
			{"name with spaces", []string{"project", "add", "evil project", "--repo", repoURL}, "invalid project name"},
			{"name of 100 characters", []string{"project", "add", strings.Repeat("e", 100), "--repo", repoURL}, "invalid project name"},
			{"name with a path", []string{"project", "add", "../evil", "--repo", repoURL}, "invalid project name"},
			{"repo ext::sh -c", []string{"project", "add", "evil-e", "--repo", "ext::sh -c touch% /tmp/pwned"}, "invalid repository URL"},
			{"repo -uoption", []string{"project", "add", "evil-f", "--repo=-uoption"}, "invalid repository URL"},
			{"repo --upload-pack=", []string{"project", "add", "evil-g", "--repo=--upload-pack=touch /tmp/pwned"}, "invalid repository URL"},
			{"repo with a newline", []string{"project", "add", "evil-h", "--repo", repoURL + "\nx"}, "invalid repository URL"},
			{"branch ../../x", []string{"project", "add", "evil-i", "--repo", repoURL, "--branch", "../../x"}, "invalid git ref"},
			{"branch with a control character", []string{"project", "add", "evil-j", "--repo", repoURL, "--branch", "ma\x01in"}, "invalid git ref"},
			{"existing project name", []string{"project", "add", "inputs", "--repo", repoURL + "2"}, "exists"},
			{"build arg without a value", []string{"project", "add", "evil-r", "--repo", repoURL, "--build-arg", "novalue"}, "invalid build argument"},
			{"build arg name starting with a digit", []string{"project", "set", "inputs", "--build-arg", "1X=y"}, "invalid build argument name"},
			{"build arg name with a command substitution", []string{"project", "add", "evil-s", "--repo", repoURL, "--build-arg", "$(touch /tmp/pwned)=x"}, "invalid build argument name"},
			{"build arg value of 64 KiB", []string{"project", "set", "inputs", "--build-arg", "BIG=" + strings.Repeat("x", 64<<10)}, "at most 4096 bytes"},
			{"deploy --ref ../../x", []string{"deploy", "inputs", "--ref", "../../x"}, "invalid git ref"},
			{"deploy --commit not-a-sha", []string{"deploy", "inputs", "--commit", "not-a-sha"}, "commit"},
			{"deploy of an unknown project", []string{"deploy", "no-such-project", "--commit", sha}, "no-such-project"},
		} {
			out, code := s.cli(t, c.args...)
			ok := code != 0 && strings.Contains(strings.ToLower(out), strings.ToLower(c.want)) && !strings.Contains(out, "internal error")
			record("API input", c.name, ok, "exit %d: %s", code, strings.TrimSpace(out))
		}

		// GraphQL directly: garbage requests get a 4xx; a hostile mutation
		// gets a GraphQL error with code "invalid" (GraphQL over HTTP
		// answers 200 for errors found while executing).
		huge := `{ projects { name } ` + strings.Repeat("# padding\n", 200_000) + `}`
		for _, c := range []struct {
			name, method, contentType, body string
		}{
			{"non-JSON body", http.MethodPost, "application/json", "this is not json"},
			{"truncated JSON body", http.MethodPost, "application/json", `{"query": "{ projects { na`},
			{"empty body", http.MethodPost, "application/json", ""},
			{"wrong content type", http.MethodPost, "text/plain", `{"query": "{ projects { name } }"}`},
			{"unknown field", http.MethodPost, "application/json", `{"query": "{ projects { name secretKey } }"}`},
			{"unknown argument", http.MethodPost, "application/json", `{"query": "{ projects(evil: 1) { name } }"}`},
			{"syntax error", http.MethodPost, "application/json", `{"query": "{ projects { name "}`},
			{"unknown input field", http.MethodPost, "application/json", `{"query": "mutation { addProject(input: {name: \"evil-k\", repo: \"file:///tmp\", evil: \"x\"}) { webhookSecret } }"}`},
			{"huge query (2 MB)", http.MethodPost, "application/json", string(must(json.Marshal(map[string]string{"query": huge})))},
			{"mutation over GET", http.MethodGet, "", ""},
		} {
			body := []byte(c.body)
			var a gqlAnswer
			if c.method == http.MethodGet {
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/graphql?query="+url.QueryEscape(`mutation { addProject(input: {name: "evil-l", repo: "file:///tmp"}) { webhookSecret } }`), nil)
				req.Header.Set("Authorization", "Bearer "+s.Token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				_ = json.Unmarshal(raw, &a)
				a.Status, a.Raw = resp.StatusCode, string(raw)
			} else {
				a = s.graphqlRaw(t, c.method, c.contentType, body)
			}
			ok := a.Status >= 400 && a.Status < 500 && len(a.Errors) > 0 && a.Errors[0].Message != ""
			record("GraphQL input", c.name, ok, "%d %s", a.Status, truncate(a.Raw, 300))
		}
		for _, c := range []struct {
			name  string
			input map[string]any
		}{
			{"addProject dockerfile ../../etc/passwd", map[string]any{"name": "evil-m", "repo": repoURL, "dockerfile": "../../etc/passwd"}},
			{"addProject context /etc", map[string]any{"name": "evil-n", "repo": repoURL, "context": "/etc"}},
			{"addProject name with uppercase and spaces", map[string]any{"name": "Evil Project", "repo": repoURL}},
			{"addProject repo ext::sh", map[string]any{"name": "evil-o", "repo": "ext::sh -c 'touch /tmp/pwned'"}},
			{"addProject repo -uoption", map[string]any{"name": "evil-p", "repo": "-uoption"}},
			{"addProject build arg with a NUL byte", map[string]any{"name": "evil-t", "repo": repoURL, "buildArgs": []map[string]string{{"name": "A", "value": "a\x00b"}}}},
			{"addProject build arg name with a space", map[string]any{"name": "evil-u", "repo": repoURL, "buildArgs": []map[string]string{{"name": "A B", "value": "x"}}}},
		} {
			a := s.graphql(t, `mutation($in: AddProjectInput!) { addProject(input: $in) { webhookSecret } }`, map[string]any{"in": c.input})
			ok := len(a.Errors) > 0 && a.Errors[0].Message != "" && a.Errors[0].Extensions["code"] == "invalid" && !strings.Contains(a.Raw, "webhookSecret\":\"")
			record("GraphQL input", c.name, ok, "%d %s", a.Status, truncate(a.Raw, 300))
		}

		after := s.stored(t)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("the bad inputs changed what is stored: projects and deployment counts %v, before %v", after, before)
		}
		t.Logf("bad-input corpus sent in %s; stored projects and deployment counts unchanged: %v", time.Since(start).Round(time.Millisecond), after)
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
