package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// TestAttackLimits attacks the build log from inside a build, on a real
// server with real builds: secrets printed so as to slip past masking (a
// build secret split across the 16 KiB cut of a long line, a PEM key), and
// a log flood past the project's cap.
func TestAttackLimits(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	t.Run("secrets split and multi-line", func(t *testing.T) { attackSplitSecrets(t, s, base) })
	t.Run("log flood", func(t *testing.T) { attackLogFlood(t, s, base) })
}

// storedLog is a deployment's stored log read through the API: the lines'
// text one a line, and joined without line breaks (a line longer than
// 16 KiB is stored as several).
func (s *serverProc) storedLog(t *testing.T, id string) (lines []slipway.LogLine, text, joined string) {
	t.Helper()
	lines, err := s.api().Logs(t.Context(), id, 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	var b, j strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
		j.WriteString(l.Text)
	}
	return lines, b.String(), j.String()
}

// pemKey returns a PEM block of random key material and its body lines.
func pemKey() (string, []string) {
	raw := make([]byte, 192)
	_, _ = rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var body []string
	for len(enc) > 64 {
		body, enc = append(body, enc[:64]), enc[64:]
	}
	body = append(body, enc)
	return "-----BEGIN PRIVATE KEY-----\n" + strings.Join(body, "\n") + "\n-----END PRIVATE KEY-----\n", body
}

func attackSplitSecrets(t *testing.T, s *serverProc, base string) {
	token := "tok-" + rand.Text()
	pem, body := pemKey()
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\n" +
		"RUN --mount=type=secret,id=token --mount=type=secret,id=pem printf '%16380s' '' && cat /run/secrets/token && echo && " +
		"cat /run/secrets/pem && cat /run/secrets/token && printf '%70000s' '' && echo && echo leak-done\n"})
	s.addProject(t, "leaky", dir)
	for name, value := range map[string]string{"token": token, "pem": pem} {
		if out, code := s.secretSet(t, "leaky", name, value); code != 0 {
			t.Fatalf("secret set %s: %d %s", name, code, out)
		}
	}
	d := s.deployWait(t, "leaky", sha)
	lines, text, joined := s.storedLog(t, d.ID)
	if d.Status != "succeeded" || !strings.Contains(text, "leak-done") || strings.Count(joined, "[redacted]") < 2+len(body) {
		t.Fatalf("the build did not print its secrets as the attack needs (%s, %d lines):\n%.3000s", d.Status, len(lines), text)
	}
	long := 0
	for _, l := range lines {
		if len(l.Text) >= 16<<10-64 {
			long++
		}
	}
	if long < 2 {
		t.Fatalf("no line was cut at 16 KiB: the split is not tested")
	}
	secrets := append([]string{token, pem}, body...)
	attack(t, "logs: a build secret across the 16 KiB cut of a line, and a PEM key", attackResult{Blocked: true, Seen: []string{text, joined},
		Detail: fmt.Sprintf("the stored log (%d lines, %d cut at 16 KiB) has %d [redacted] marks", len(lines), long, strings.Count(joined, "[redacted]"))},
		secrets...)
}

func attackLogFlood(t *testing.T, s *serverProc, base string) {
	const maxLines = 300
	// Without the cap the build would print 100000 lines, then sleep 5
	// minutes: it must be stopped, not merely cut short.
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN seq 1 100000 && sleep 300\n"})
	s.addProject(t, "flood", dir, "--log-max-lines", fmt.Sprint(maxLines))
	start := time.Now()
	out, _ := s.cli(t, "deploy", "flood", "--commit", sha)
	id := s.deployments(t, "flood")[0].ID
	d := s.waitFinished(t, "flood", id, 3*time.Minute)
	took := time.Since(start)
	lines, _, _ := s.storedLog(t, id)
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1].Text
	}
	blocked := d.Status == "failed" && strings.HasPrefix(d.Error, slipway.LogLimitExceeded) && len(lines) <= maxLines+1 &&
		strings.Contains(last, slipway.LogLimitExceeded) && took < 2*time.Minute
	attack(t, "logs: a flood past the project's log cap", attackResult{Blocked: blocked,
		Detail: fmt.Sprintf("deployment %s in %v, error %q; %d lines stored, the last %q\n%s", d.Status, took.Round(time.Second), d.Error, len(lines), last, out)})
	// The machine is usable again: the next build of the project runs.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo calm\n"})
	if d2 := s.deployWait(t, "flood", sha2); d2.Status != "succeeded" {
		t.Errorf("the build after the flood = %s", d2.Status)
	}
}

// TestAttackFullDisk fills a project's volume (a small filesystem of its
// own) from a build: the deployment fails within a minute with the reason
// rather than staying "building", and the next build on the volume runs.
func TestAttackFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN dd if=/dev/zero of=/big bs=1M count=400\n"})
	s.addProject(t, "full", dir)
	vol := filepath.Join(s.DataDir, "volumes", "full")
	if err := os.MkdirAll(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m,mode=0700", "tmpfs", vol).CombinedOutput(); err != nil {
		t.Fatalf("mount a small filesystem on the volume: %v\n%s", err, out)
	}
	start := time.Now()
	out, _ := s.cli(t, "deploy", "full", "--commit", sha)
	id := s.deployments(t, "full")[0].ID
	d := s.waitFinished(t, "full", id, 3*time.Minute)
	took := time.Since(start)
	reason := strings.Contains(strings.ToLower(d.Error), "no space left on device")
	attack(t, "disk: a build fills its volume", attackResult{Blocked: d.Status == "failed" && reason && took < time.Minute,
		Detail: fmt.Sprintf("deployment %s in %v, error %q\n%s", d.Status, took.Round(time.Second), d.Error, out)})
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo room-again\n"})
	if d2 := s.deployWait(t, "full", sha2); d2.Status != "succeeded" {
		t.Errorf("the build after the full disk = %s", d2.Status)
	}
}
