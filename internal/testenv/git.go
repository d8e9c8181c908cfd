package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GitRepo creates a git repository (branch main) in a temporary directory
// with one commit holding files (path → content) and returns the directory
// and the commit's SHA. Its URL is the directory itself or "file://"+dir.
func GitRepo(t testing.TB, files map[string]string) (dir, sha string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("testenv: git not found: %v (apt-get install git)", err)
	}
	dir = t.TempDir()
	// Rootless builders fetch as their own unprivileged users: they must
	// be able to read the repository (t.TempDir makes it 0700).
	PassThrough(t, filepath.Dir(dir))
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "init", "--quiet", "--initial-branch=main")
	return dir, Commit(t, dir, files)
}

// Commit writes files (path → content; an empty content removes the file)
// into the repository dir, commits them all and returns the new SHA.
func Commit(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	WriteFiles(t, dir, files)
	Git(t, dir, "add", "--all")
	Git(t, dir, "commit", "--quiet", "--allow-empty", "-m", "commit")
	return Git(t, dir, "rev-parse", "HEAD")
}

// WriteFiles writes files (path → content, slash-separated paths; an empty
// content removes the file) under dir, making directories as needed.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Git runs git in dir with a fixed identity and no user or system
// configuration, and returns its trimmed stdout; it fails the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{
		"-c", "user.name=Slipway Test",
		"-c", "user.email=test@slipway.invalid",
		"-c", "commit.gpgsign=false",
		"-c", "protocol.file.allow=always",
	}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// PassThrough lets other users pass through dir (chmod o+x, and g+x) when
// it does not already: rootless builders are other users, and test
// directories are private. It never changes the mode of a directory others
// can already pass.
func PassThrough(t testing.TB, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(dir, st.Mode().Perm()|0o011); err != nil {
			t.Fatal(err)
		}
	}
}
