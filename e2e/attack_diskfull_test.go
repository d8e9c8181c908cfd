package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// TestDataDirFull fills the filesystem of the server's data directory (a
// small tmpfs of its own) while a deployment builds: the store, the log
// stream, the registry and the build's volume (inside it) cannot write,
// and the build writes 50 MB. The build fails for the full disk; the
// store cannot record that while it is full, and records it, with the
// reason, once space returns: the deployment is not left "building".
func TestDataDirFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount a small filesystem on the data directory: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(data, syscall.MNT_DETACH) })
	s := startServer(t, data, "127.0.0.1:0")
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo started && sleep 10 && dd if=/dev/zero of=/big bs=1M count=50\n"})
	s.addProject(t, "crowded", dir)
	s.cli(t, "deploy", "crowded", "--commit", sha)
	id := s.deployments(t, "crowded")[0].ID
	s.waitLog(t, "crowded", id, "started")
	filler := filepath.Join(data, "filler")
	fill := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=1M")
	out, _ := fill.CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("dd did not fill the data directory: %s", out)
	}
	// Full for a minute: the build fails for it within that minute. The
	// store may or may not find room for the record meanwhile (SQLite
	// reuses free pages).
	filled := time.Now()
	whileFull := ""
	for time.Since(filled) < time.Minute {
		for _, d := range s.deployments(t, "crowded") {
			if d.ID == id && terminal(d.Status) && whileFull == "" {
				whileFull = fmt.Sprintf("%s after %v with the disk full", d.Status, time.Since(filled).Round(time.Second))
			}
		}
		time.Sleep(time.Second)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	spaceBack := time.Now()
	d := s.waitFinished(t, "crowded", id, 2*time.Minute)
	took := time.Since(spaceBack)
	if whileFull == "" {
		whileFull = fmt.Sprintf("recorded %v after space returned", took.Round(time.Second))
	}
	// Recorded failed, with the reason: while the disk was full, or once
	// space returned (the result is retried until the store can write).
	blocked := d.Status == "failed" && strings.Contains(strings.ToLower(d.Error), "no space left on device") && took < time.Minute
	attack(t, "disk: the server's data directory fills during a build", attackResult{Blocked: blocked,
		Detail: fmt.Sprintf("%s: %s %q", whileFull, d.Status, truncate(d.Error, 300))})
	// The server works on: the next build succeeds.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo roomy\n"})
	if d2 := s.deployWait(t, "crowded", sha2); d2.Status != "succeeded" {
		t.Errorf("the build after space returned = %s", d2.Status)
	}
}
