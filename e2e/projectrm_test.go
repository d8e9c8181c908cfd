package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/machine/process"
)

// subIDLines returns the lines of /etc/subuid and /etc/subgid that belong
// to user name (by name or uid).
func subIDLines(t *testing.T, name, uid string) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			owner, _, _ := strings.Cut(sc.Text(), ":")
			if owner == name || (uid != "" && owner == uid) {
				out = append(out, f+": "+sc.Text())
			}
		}
		fh.Close()
	}
	return out
}

// TestProjectRm removes a project built by a rootless builder: refused
// without --yes and while a deployment runs; then the builder user, its
// subordinate ids, the volume, the runtime directory, the machine record
// and the deployments go, and the name can be used again.
func TestProjectRm(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "127.0.0.1:0")
	if out := s.waitOutput(t, regexp.MustCompile(`builders: `)); !strings.Contains(out, "builders: rootless buildah") {
		t.Fatalf("the server did not choose rootless builders:\n%s", out)
	}
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	// A name of its own: builder users are per host, and other tests (or
	// other servers on this host) use the common names.
	name := "rm-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo built > /built\n"})
	s.addProject(t, name, dir)
	if d := s.deployWait(t, name, sha); d.Status != "succeeded" {
		t.Fatalf("deployment = %s, want succeeded", d.Status)
	}
	userName := process.UserName(name)
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatalf("builder user %s after a rootless build: %v", userName, err)
	}
	if ls := subIDLines(t, userName, u.Uid); len(ls) != 2 {
		t.Fatalf("subordinate ranges of %s: %q, want one in each file", userName, ls)
	}
	vol := filepath.Join(dataDir, "volumes", name)
	sum := sha256.Sum256([]byte(vol))
	runtimeDir := filepath.Join(process.DefaultRuntimeBase, hex.EncodeToString(sum[:8]))
	for _, p := range []string{vol, runtimeDir} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("before removal: %v", err)
		}
	}

	if out, code := s.cli(t, "project", "rm", name); code != 2 || !strings.Contains(out, "--yes") {
		t.Errorf("project rm without --yes = %d %q; want exit 2 asking for --yes", code, out)
	}
	// A deployment that runs blocks the removal.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN sleep 60\n"})
	id := s.startDeploy(t, name, sha2)
	if out, code := s.cli(t, "project", "rm", name, "--yes"); code == 0 || !strings.Contains(out, id) || !strings.Contains(out, "slipway cancel") {
		t.Errorf("project rm during deployment %s = %d %q; want a refusal naming it", id, code, out)
	}
	if out, code := s.cli(t, "cancel", id); code != 0 {
		t.Fatalf("cancel: %d %s", code, out)
	}
	s.waitFinished(t, name, id, 2*time.Minute)

	out, code := s.cli(t, "project", "rm", name, "--yes")
	if code != 0 || !strings.Contains(out, "2 deployment record(s)") {
		t.Fatalf("project rm --yes = %d %q", code, out)
	}
	if _, err := user.Lookup(userName); err == nil {
		t.Errorf("builder user %s still exists; the server said:\n%s", userName, s.out.String())
	}
	if ls := subIDLines(t, userName, u.Uid); len(ls) != 0 {
		t.Errorf("subordinate ranges left: %q", ls)
	}
	for _, p := range []string{vol, runtimeDir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after removal: %v, want it gone", p, err)
		}
	}
	if out, _ := s.cli(t, "projects"); strings.Contains(out, name) {
		t.Errorf("slipway projects still lists %s:\n%s", name, out)
	}
	if out, _ := s.cli(t, "machines"); strings.Contains(out, name) {
		t.Errorf("slipway machines still lists %s:\n%s", name, out)
	}
	if out, code := s.cli(t, "project", "rm", name, "--yes"); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("project rm of a removed project = %d %q, want not found", code, out)
	}

	// The name works again, with a new builder user.
	s.addProject(t, name, dir)
	if d := s.deployWait(t, name, sha); d.Status != "succeeded" {
		t.Fatalf("deployment after re-adding = %s, want succeeded", d.Status)
	}
	if out, code := s.cli(t, "project", "rm", name, "--yes"); code != 0 {
		t.Errorf("final project rm = %d %q", code, out)
	}
}
