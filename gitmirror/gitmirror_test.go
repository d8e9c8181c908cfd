package gitmirror_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// objectCount is the number of objects (loose and packed) in a repository.
func objectCount(t *testing.T, gitDir string) int {
	t.Helper()
	out := testenv.Git(t, gitDir, "count-objects", "-v")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, ": ")
		if k == "count" || k == "in-pack" {
			i, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			n += i
		}
	}
	return n
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFetchIncrementalAndCheckout(t *testing.T) {
	repo, sha1 := testenv.GitRepo(t, map[string]string{
		"Dockerfile":  "FROM scratch\n",
		"src/app.txt": "version 1\n",
	})
	vol := t.TempDir()
	m := &gitmirror.Mirror{Dir: filepath.Join(vol, "mirror.git"), URL: "file://" + repo}

	start := time.Now()
	if err := m.Fetch(t.Context(), sha1, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("first fetch (init + fetch): %v", time.Since(start))
	marker := filepath.Join(m.Dir, "slipway-marker")
	if err := os.WriteFile(marker, []byte("still here"), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, m.Dir)
	before := objectCount(t, m.Dir)

	// A second commit changing one file: commit, root tree, src tree, blob.
	sha2 := testenv.Commit(t, repo, map[string]string{"src/app.txt": "version 2\n"})
	var out bytes.Buffer
	start = time.Now()
	if err := m.Fetch(t.Context(), sha2, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("incremental fetch: %v; git said: %q", time.Since(start), out.String())
	if readFile(t, marker) != "still here" || inode(t, m.Dir) != ino {
		t.Error("the mirror was recreated instead of fetched into")
	}
	if got := objectCount(t, m.Dir) - before; got != 4 {
		t.Errorf("incremental fetch brought %d objects, want the 4 new ones", got)
	}
	if !strings.Contains(out.String(), "main") {
		t.Errorf("fetch output %q does not show the updated branch", out.String())
	}

	// A commit already in the mirror needs no remote at all.
	gone := &gitmirror.Mirror{Dir: m.Dir, URL: "file:///nonexistent/repo"}
	if err := gone.Fetch(t.Context(), sha1, nil); err != nil {
		t.Errorf("fetch of a commit the mirror has, with the remote gone: %v", err)
	}

	// Checkouts of exact SHAs, into the same directory one after the other.
	dst := filepath.Join(vol, "work", "checkout")
	for _, c := range []struct{ sha, want string }{{sha1, "version 1\n"}, {sha2, "version 2\n"}, {sha1, "version 1\n"}} {
		if err := m.Checkout(t.Context(), c.sha, dst); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dst, "src", "app.txt")); got != c.want {
			t.Errorf("checkout %s: app.txt = %q, want %q", c.sha[:8], got, c.want)
		}
		// The tree carries no git link: the same commit gives the same
		// build context wherever it is checked out.
		if _, err := os.Lstat(filepath.Join(dst, ".git")); !os.IsNotExist(err) {
			t.Errorf("checkout %s left a .git link (err %v)", c.sha[:8], err)
		}
	}
	// The agent removes checkouts with RemoveAll; the mirror forgets them.
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(vol, "work", "other")
	if err := m.Checkout(t.Context(), sha2, other); err != nil {
		t.Fatal(err)
	}
	if wt := testenv.Git(t, m.Dir, "worktree", "list", "--porcelain"); strings.Contains(wt, dst) {
		t.Errorf("removed worktree still listed:\n%s", wt)
	}
}

func TestFetchUnknownCommit(t *testing.T) {
	repo, _ := testenv.GitRepo(t, map[string]string{"a": "1"})
	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: repo}
	missing := strings.Repeat("ab", 20)
	err := m.Fetch(t.Context(), missing, nil)
	var nf *gitmirror.NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("Fetch(unknown) = %v (%T), want *NotFoundError", err, err)
	}
	if want := "commit " + missing + " not found in " + repo; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if err := m.Checkout(t.Context(), missing, filepath.Join(t.TempDir(), "x")); !errors.As(err, &nf) {
		t.Errorf("Checkout(unknown) = %v, want *NotFoundError", err)
	}
	for _, bad := range []string{"", "abc", "main", "--upload-pack=touch /tmp/pwned", strings.Repeat("g", 40)} {
		if err := m.Fetch(t.Context(), bad, nil); err == nil || errors.As(err, &nf) {
			t.Errorf("Fetch(%q) = %v, want a validation error", bad, err)
		}
	}
}

func TestFetchBySHA(t *testing.T) {
	// A commit on no branch or tag, like a pull request head.
	repo, _ := testenv.GitRepo(t, map[string]string{"a": "1"})
	testenv.Git(t, repo, "checkout", "--quiet", "-b", "topic")
	sha := testenv.Commit(t, repo, map[string]string{"a": "pr"})
	testenv.Git(t, repo, "update-ref", "refs/pull/1/head", sha)
	testenv.Git(t, repo, "checkout", "--quiet", "main")
	testenv.Git(t, repo, "branch", "--quiet", "-D", "topic")

	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo}
	if err := m.Fetch(t.Context(), sha, nil); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "co")
	if err := m.Checkout(t.Context(), sha, dst); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dst, "a")); got != "pr" {
		t.Errorf("a = %q, want pr", got)
	}
}

func TestCheckoutSubmodules(t *testing.T) {
	sub, _ := testenv.GitRepo(t, map[string]string{"lib.txt": "library\n"})
	repo, _ := testenv.GitRepo(t, map[string]string{"main.txt": "main\n"})
	testenv.Git(t, repo, "submodule", "--quiet", "add", "file://"+sub, "vendor/lib")
	testenv.Git(t, repo, "commit", "--quiet", "-m", "add submodule")
	sha := testenv.Git(t, repo, "rev-parse", "HEAD")

	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo}
	if err := m.Fetch(t.Context(), sha, nil); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "co")
	if err := m.Checkout(t.Context(), sha, dst); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dst, "vendor", "lib", "lib.txt")); got != "library\n" {
		t.Errorf("submodule file = %q", got)
	}
}

func TestMirrorDirNotARepo(t *testing.T) {
	repo, sha := testenv.GitRepo(t, map[string]string{"a": "1"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &gitmirror.Mirror{Dir: dir, URL: repo}
	if err := m.Fetch(t.Context(), sha, nil); err == nil || !strings.Contains(err.Error(), "not a git mirror") {
		t.Errorf("Fetch into a non-empty non-repo = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Error("Fetch removed a file it did not own")
	}
}

func TestResolveRef(t *testing.T) {
	repo, sha1 := testenv.GitRepo(t, map[string]string{"a": "1"})
	testenv.Git(t, repo, "tag", "-a", "-m", "release", "v1")
	testenv.Git(t, repo, "tag", "light")
	sha2 := testenv.Commit(t, repo, map[string]string{"a": "2"})
	testenv.Git(t, repo, "branch", "feature/main", sha1)
	url := "file://" + repo

	tests := []struct {
		ref, want string
	}{
		{"main", sha2},
		{"refs/heads/main", sha2},
		{"HEAD", sha2},
		{"v1", sha1},           // annotated: the commit, not the tag object
		{"refs/tags/v1", sha1}, // same
		{"light", sha1},
		{"feature/main", sha1},
		{sha1, sha1},
	}
	for _, tt := range tests {
		got, err := gitmirror.ResolveRef(t.Context(), url, tt.ref)
		if err != nil || got != tt.want {
			t.Errorf("ResolveRef(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
		}
	}

	errs := []struct {
		url, ref, code, text string
	}{
		{url, "nope", slipway.ENOTFOUND, `ref "nope" not found in ` + url},
		{url, "refs/heads/nope", slipway.ENOTFOUND, "not found"},
		{url, "--upload-pack=x", slipway.EINVALID, "invalid git ref"},
		{url, "a..b", slipway.EINVALID, "invalid git ref"},
		{"file:///nonexistent/repo", "main", slipway.EINVALID, "cannot read repository file:///nonexistent/repo"},
		{"-oProxyCommand=x", "main", slipway.EINVALID, "invalid repository URL"},
		{"https://user:secret@127.0.0.1:1/repo.git", "main", slipway.EINVALID, "cannot read repository https://127.0.0.1:1/repo.git"},
	}
	for _, tt := range errs {
		_, err := gitmirror.ResolveRef(t.Context(), tt.url, tt.ref)
		if slipway.ErrorCode(err) != tt.code || !strings.Contains(slipway.ErrorMessage(err), tt.text) {
			t.Errorf("ResolveRef(%q, %q) = %v; want code %s with %q", tt.url, tt.ref, err, tt.code, tt.text)
		}
		if strings.Contains(slipway.ErrorMessage(err), "secret") {
			t.Errorf("ResolveRef(%q) leaks the credentials: %v", tt.url, err)
		}
	}
}

// gitHTTP serves the repositories under root over HTTP with git's own
// http-backend, on a real socket: a remote that is not on the builder's
// disk as far as git can tell.
func gitHTTP(t *testing.T, root string) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git's http-backend is missing (package git): %v", err)
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// A repository fetched over the network must not pull a repository on the
// builder's disk (another project's mirror, say) into its build context as
// a submodule; a submodule that is itself on the network is fine.
func TestSubmoduleOnTheHostRefused(t *testing.T) {
	root := t.TempDir()
	secret, _ := testenv.GitRepo(t, map[string]string{"secret.txt": "another project's source\n"})
	lib, _ := testenv.GitRepo(t, map[string]string{"lib.txt": "library\n"})
	testenv.Git(t, root, "clone", "--quiet", "--bare", lib, "lib.git")
	base := gitHTTP(t, root)

	for _, tc := range []struct {
		name, subURL string
		refused      bool
	}{
		{"file URL", "file://" + secret, true},
		{"absolute path", secret, true},
		{"over HTTP", base + "/lib.git", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, _ := testenv.GitRepo(t, map[string]string{"main.txt": "main\n"})
			testenv.Git(t, repo, "submodule", "--quiet", "add", tc.subURL, "vendor/sub")
			testenv.Git(t, repo, "commit", "--quiet", "-m", "add submodule")
			sha := testenv.Git(t, repo, "rev-parse", "HEAD")
			name := strings.ReplaceAll(tc.name, " ", "-") + ".git"
			testenv.Git(t, root, "clone", "--quiet", "--bare", repo, name)

			m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: base + "/" + name}
			if err := m.Fetch(t.Context(), sha, nil); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "co")
			err := m.Checkout(t.Context(), sha, dst)
			var refused *gitmirror.RefusedError
			if tc.refused {
				if !errors.As(err, &refused) || !strings.Contains(err.Error(), "a submodule of commit "+sha+" is a local path or file:// URL") {
					t.Errorf("Checkout with a submodule at %s = %v, want it refused", tc.subURL, err)
				}
				if _, err := os.Stat(filepath.Join(dst, "vendor", "sub", "secret.txt")); err == nil {
					t.Errorf("the host's repository was checked out into the build context")
				}
				return
			}
			if err != nil {
				t.Fatalf("Checkout with a submodule over HTTP: %v", err)
			}
			if got := readFile(t, filepath.Join(dst, "vendor", "sub", "lib.txt")); got != "library\n" {
				t.Errorf("submodule file = %q", got)
			}
		})
	}
}

// A repository with 20,000 tags: a fetch brings the commit without
// listing, storing or negotiating the tags.
func TestFetchManyTags(t *testing.T) {
	repo, sha := testenv.GitRepo(t, map[string]string{"a": "1"})
	var refs strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&refs, "create refs/tags/v%d %s\n", i, sha)
	}
	cmd := exec.Command("git", "update-ref", "--stdin")
	cmd.Dir, cmd.Stdin = repo, strings.NewReader(refs.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create tags: %v: %s", err, out)
	}
	testenv.Git(t, repo, "pack-refs", "--all")

	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo}
	for i, commit := range []string{sha, testenv.Commit(t, repo, map[string]string{"a": "2"})} {
		start := time.Now()
		if err := m.Fetch(t.Context(), commit, nil); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		t.Logf("fetch %d of a repository with 20,000 tags: %s", i, time.Since(start).Round(time.Millisecond))
		if tags := testenv.Git(t, m.Dir, "for-each-ref", "--count=1", "refs/tags/"); tags != "" {
			t.Fatalf("fetch %d copied tags into the mirror: %s", i, tags)
		}
	}

	// A commit only a tag names (not a branch) is still found.
	testenv.Git(t, repo, "checkout", "--quiet", "-b", "topic")
	onTag := testenv.Commit(t, repo, map[string]string{"a": "tagged"})
	testenv.Git(t, repo, "tag", "release-only", onTag)
	testenv.Git(t, repo, "checkout", "--quiet", "main")
	testenv.Git(t, repo, "branch", "--quiet", "-D", "topic")
	if err := m.Fetch(t.Context(), onTag, nil); err != nil {
		t.Fatalf("fetch of a commit on a tag only: %v", err)
	}
}

// hasCommit reports whether the repository at gitDir holds commit.
func hasCommit(gitDir, commit string) bool {
	return exec.Command("git", "--git-dir="+gitDir, "cat-file", "-e", commit+"^{commit}").Run() == nil
}

func TestRefreshFetchesBranchesOfTheLastRepository(t *testing.T) {
	// Nothing to refresh before the first fetch.
	if _, err := gitmirror.Refresh(t.Context(), filepath.Join(t.TempDir(), "none.git"), "", nil); err != nil {
		t.Errorf("Refresh of a missing mirror: %v", err)
	}
	repo, sha1 := testenv.GitRepo(t, map[string]string{"a": "1"})
	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo}
	if err := m.Fetch(t.Context(), sha1, nil); err != nil {
		t.Fatal(err)
	}
	sha2 := testenv.Commit(t, repo, map[string]string{"a": "2"})
	if hasCommit(m.Dir, sha2) {
		t.Fatal("the mirror has the new commit before any fetch")
	}
	if _, err := gitmirror.Refresh(t.Context(), m.Dir, "", nil); err != nil {
		t.Fatal(err)
	}
	if !hasCommit(m.Dir, sha2) {
		t.Error("Refresh did not fetch the branch's new commit")
	}
	// The project's repository moved: the next Fetch points origin at the
	// new URL (the config is rewritten only when it changed).
	moved := filepath.Join(t.TempDir(), "moved")
	testenv.Git(t, "", "clone", "--quiet", "--bare", repo, moved)
	sha3 := testenv.Commit(t, repo, map[string]string{"a": "3"})
	testenv.Git(t, repo, "push", "--quiet", moved, "main")
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	m.URL = "file://" + moved
	if err := m.Fetch(t.Context(), sha3, nil); err != nil {
		t.Fatalf("fetch after the repository moved: %v", err)
	}
	if got := testenv.Git(t, m.Dir, "config", "remote.origin.url"); got != m.URL {
		t.Errorf("origin = %q, want %q", got, m.URL)
	}
	if err := m.Maintain(t.Context()); err != nil {
		t.Errorf("Maintain: %v", err)
	}
}

// TestRefreshPreparesThePushedCommit: when one branch moved, Refresh checks
// out its new head ahead of time, and the build's Checkout moves that
// checkout into place instead of checking out again. Two branches moving,
// or a commit with submodules, prepare nothing.
func TestRefreshPreparesThePushedCommit(t *testing.T) {
	repo, sha1 := testenv.GitRepo(t, map[string]string{"a": "1"})
	prepared := filepath.Join(t.TempDir(), "work", ".prepared")
	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo, Prepared: prepared}
	if err := m.Fetch(t.Context(), sha1, nil); err != nil {
		t.Fatal(err)
	}
	sha2 := testenv.Commit(t, repo, map[string]string{"a": "2"})
	got, err := gitmirror.Refresh(t.Context(), m.Dir, prepared, nil)
	if err != nil || got != sha2 {
		t.Fatalf("Refresh = %q, %v; want the pushed commit %s prepared", got, err, sha2)
	}
	if a := readFile(t, filepath.Join(prepared, sha2, "a")); a != "2" {
		t.Fatalf("prepared checkout has a = %q", a)
	}
	if _, err := os.Stat(filepath.Join(prepared, sha2, ".git")); err == nil {
		t.Error("the prepared checkout has a .git link")
	}
	// Marked, to tell a moved checkout from a new one.
	if err := os.WriteFile(filepath.Join(prepared, sha2, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Fetch(t.Context(), sha2, nil); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(filepath.Dir(prepared), "d-1")
	if err := m.Checkout(t.Context(), sha2, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "marker")); err != nil || readFile(t, filepath.Join(dst, "a")) != "2" {
		t.Errorf("Checkout did not move the prepared checkout into place (marker: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(prepared, sha2)); err == nil {
		t.Error("the prepared checkout is still there after Checkout took it")
	}
	// The next checkout of the same commit checks out afresh.
	if err := m.Checkout(t.Context(), sha2, dst+"b"); err != nil || readFile(t, filepath.Join(dst+"b", "a")) != "2" {
		t.Fatalf("second checkout: %v", err)
	}

	// Two branches moved: which one is the build's is unknown.
	testenv.Git(t, repo, "branch", "other")
	testenv.Commit(t, repo, map[string]string{"a": "3"})
	if got, err := gitmirror.Refresh(t.Context(), m.Dir, prepared, nil); err != nil || got != "" {
		t.Errorf("Refresh with two branches moved = %q, %v; want nothing prepared", got, err)
	}

	// A commit with a submodule is left to Checkout.
	sub, _ := testenv.GitRepo(t, map[string]string{"lib.txt": "library\n"})
	testenv.Git(t, repo, "-c", "protocol.file.allow=always", "submodule", "--quiet", "add", "file://"+sub, "vendor/lib")
	testenv.Git(t, repo, "commit", "--quiet", "-m", "add submodule")
	if got, err := gitmirror.Refresh(t.Context(), m.Dir, prepared, nil); err != nil || got != "" {
		t.Errorf("Refresh of a commit with a submodule = %q, %v; want nothing prepared", got, err)
	}
	if entries, _ := os.ReadDir(prepared); len(entries) != 0 {
		t.Errorf("prepared dir holds %d entries after a commit with a submodule", len(entries))
	}
}

// A repository URL's password never reaches a git command line (every
// local user can read argv in /proc): ResolveRef, Fetch and Refresh, with
// git wrapped by a script that records its arguments.
func TestURLNeverOnTheCommandLine(t *testing.T) {
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	argv := filepath.Join(t.TempDir(), "argv")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + argv + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	repo, sha := testenv.GitRepo(t, map[string]string{"a": "1"})
	testenv.Git(t, root, "clone", "--quiet", "--bare", repo, "r.git")
	const password = "s3cret-pw-on-argv"
	url := strings.Replace(gitHTTP(t, root), "http://", "http://user:"+password+"@", 1) + "/r.git"
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	if got, err := gitmirror.ResolveRef(t.Context(), url, "main"); err != nil || got != sha {
		t.Fatalf("ResolveRef = %s, %v; want %s", got, err, sha)
	}
	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: url}
	if err := m.Fetch(t.Context(), sha, nil); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	sha2 := testenv.Commit(t, repo, map[string]string{"a": "2"})
	testenv.Git(t, repo, "push", "--quiet", filepath.Join(root, "r.git"), "main")
	if _, err := gitmirror.Refresh(t.Context(), m.Dir, "", nil); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if err := m.Fetch(t.Context(), sha2, nil); err != nil {
		t.Fatalf("Fetch after Refresh: %v", err)
	}
	b, err := os.ReadFile(argv)
	if err != nil || !strings.Contains(string(b), "fetch") || !strings.Contains(string(b), "ls-remote") {
		t.Fatalf("the git wrapper recorded %q (%v): it was not used", b, err)
	}
	if strings.Contains(string(b), password) {
		t.Errorf("git's argv held the password:\n%s", b)
	}
	if cfg, _ := os.ReadFile(filepath.Join(m.Dir, "config")); strings.Contains(string(cfg), password) {
		t.Errorf("the mirror's config holds the password:\n%s", cfg)
	}
	if got := testenv.Git(t, m.Dir, "config", "remote.origin.url"); got != url {
		t.Errorf("origin = %q, want %q", got, url)
	}
}

// Fetch asks for a pull request's head ref, refs/pull/N/head, when the
// branches lack the commit (a remote that does not serve commits by SHA
// still serves the ref). The ref here points past the commit asked for, so
// the mirror having the later commit shows the ref was fetched (a fetch by
// SHA alone would not bring it).
func TestFetchPullRequestRef(t *testing.T) {
	repo, _ := testenv.GitRepo(t, map[string]string{"a": "1"})
	testenv.Git(t, repo, "checkout", "--quiet", "-b", "topic")
	sha := testenv.Commit(t, repo, map[string]string{"a": "pr"})
	later := testenv.Commit(t, repo, map[string]string{"a": "pr2"})
	testenv.Git(t, repo, "update-ref", "refs/pull/7/head", later)
	testenv.Git(t, repo, "checkout", "--quiet", "main")
	testenv.Git(t, repo, "branch", "--quiet", "-D", "topic")

	plain := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo}
	if err := plain.Fetch(t.Context(), sha, nil); err != nil {
		t.Fatal(err)
	}
	if hasCommit(plain.Dir, later) {
		t.Fatal("a fetch by SHA brought the later commit too: this test cannot tell the ref fetch from it")
	}
	m := &gitmirror.Mirror{Dir: filepath.Join(t.TempDir(), "m.git"), URL: "file://" + repo, Ref: "refs/pull/7/head"}
	if err := m.Fetch(t.Context(), sha, nil); err != nil {
		t.Fatal(err)
	}
	if !hasCommit(m.Dir, later) {
		t.Error("Fetch with Ref refs/pull/7/head did not fetch the ref")
	}
	dst := filepath.Join(t.TempDir(), "co")
	if err := m.Checkout(t.Context(), sha, dst); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dst, "a")); got != "pr" {
		t.Errorf("a = %q, want pr", got)
	}
}
