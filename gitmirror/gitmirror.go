// Package gitmirror keeps a persistent bare mirror of a project's
// repository on the builder's volume, fetches commits into it incrementally
// and checks out exact commits, by running the git command-line tool.
//
// A fetch never clones afresh when the mirror exists: the volume is the
// cache, and only new objects travel. The package must not know about
// builds or deployments; it only moves commits.
package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway"
)

// Mirror is a bare mirror of one repository. The zero value is not usable:
// set Dir and URL.
type Mirror struct {
	// Dir is the bare repository's directory, on the volume. It is created
	// on the first Fetch.
	Dir string
	// URL is the repository to fetch from: any URL git understands
	// (https://, ssh://, file://, a path).
	URL string
	// Prepared, if set, is the directory where Refresh leaves a checkout
	// made ahead of time (Prepared/SHA); Checkout moves it into place
	// instead of checking the commit out again. On the destination's
	// filesystem.
	Prepared string
	// Ref, if set, is the ref the commit to fetch was asked for. When it
	// is outside refs/heads (a pull request's head, refs/pull/<N>/head,
	// which GitHub keeps on the base repository even for a pull request
	// from a fork) and the branches lack the commit, Fetch asks for it.
	Ref string
}

// NotFoundError says the repository does not have the commit.
type NotFoundError struct {
	Commit string
	// Repo is the repository URL with any credentials removed.
	Repo string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("commit %s not found in %s", e.Commit, e.Repo)
}

var shaRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// Fetch makes sure commit is in the mirror. It creates the mirror if
// missing and returns at once when the commit is already there. Otherwise
// it fetches the branches (only the missing objects travel; tags are left
// alone, since a repository may have tens of thousands), then, when the
// commit is on no branch (a pull request head, say), asks the remote for it
// by SHA, and only as a last resort fetches the tags. git's progress goes
// to out (may be nil). A commit the remote does not have is a
// *NotFoundError.
func (m *Mirror) Fetch(ctx context.Context, commit string, out io.Writer) error {
	if !shaRE.MatchString(commit) {
		return fmt.Errorf("fetch: %q is not a full commit SHA", commit)
	}
	if err := m.check(); err != nil {
		return err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	if err := m.ensure(ctx); err != nil {
		return err
	}
	if m.prepared(commit) != "" || m.has(ctx, commit) {
		return nil
	}
	if err := m.fetchBranches(ctx, out); err != nil {
		return fmt.Errorf("fetch from %s: %w", redact(m.URL), err)
	}
	if m.has(ctx, commit) {
		return nil
	}
	if err := m.fetchRef(ctx, commit, out); err != nil || m.has(ctx, commit) {
		return err
	}
	// Not on a branch: ask for the SHA itself, and keep a ref to it so gc
	// does not drop it before the checkout.
	if _, err := m.git(ctx, out, "fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance", "origin",
		"+"+commit+":refs/slipway/commits/"+commit); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if out != nil {
			fmt.Fprintf(out, "fetch by SHA: %v\n", err)
		}
	}
	if m.has(ctx, commit) {
		return nil
	}
	// A remote that does not serve commits by SHA: the commit may still
	// be on a tag.
	if _, err := m.git(ctx, out, "fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance", "origin",
		"+refs/tags/*:refs/tags/*"); err != nil {
		return fmt.Errorf("fetch tags from %s: %w", redact(m.URL), err)
	}
	if m.has(ctx, commit) {
		return nil
	}
	return &NotFoundError{Commit: commit, Repo: redact(m.URL)}
}

// fetchRef fetches m.Ref, when it is a ref outside refs/heads, into a
// ref that keeps commit from gc until its checkout. A remote without the
// ref is no error here: the fetch by SHA comes next. Callers hold the
// lock.
func (m *Mirror) fetchRef(ctx context.Context, commit string, out io.Writer) error {
	if !strings.HasPrefix(m.Ref, "refs/") || strings.HasPrefix(m.Ref, "refs/heads/") || slipway.ValidateRef(m.Ref) != nil {
		return nil
	}
	if _, err := m.git(ctx, out, "fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance", "origin",
		"+"+m.Ref+":refs/slipway/commits/"+commit); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if out != nil {
			fmt.Fprintf(out, "fetch %s: %v\n", m.Ref, err)
		}
	}
	return nil
}

// fetchBranches fetches the remote's branches into the mirror: only the
// missing objects travel. --no-tags: no tag following either, so the
// remote lists only its branches (protocol v2 ref prefixes), not every
// tag. No automatic maintenance (a git process more on the way to a
// build): Maintain runs it after the build. Callers hold the lock.
func (m *Mirror) fetchBranches(ctx context.Context, out io.Writer) error {
	_, err := m.git(ctx, out, "fetch", "--prune", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance", "origin",
		"+refs/heads/*:refs/heads/*")
	return err
}

// Refresh fetches the branches of the repository the mirror in dir was
// last fetched from, if dir holds a mirror (else it does nothing). A
// machine that wakes for a push runs it while the server schedules the
// build, so that the build's Fetch finds the pushed commit already there.
// When exactly one branch moved (the push), Refresh also checks out its
// new head into prepared/SHA (if prepared is set), for the build's
// Checkout to move into place; a checkout with submodules is left to
// Checkout, whose rules for them depend on the URL it is given. It returns
// the commit it prepared, if any. ctx bounds it; the build's Fetch waits
// for it (the mirror's lock).
func Refresh(ctx context.Context, dir, prepared string, out io.Writer) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return "", nil
	}
	m := &Mirror{Dir: dir}
	unlock, err := m.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	if m.URL = m.originURL(); m.URL == "" {
		return "", nil
	}
	before := m.branchHeads()
	if err := m.fetchBranches(ctx, out); err != nil {
		return "", err
	}
	if prepared == "" {
		return "", nil
	}
	// Earlier guesses nobody took.
	if err := os.RemoveAll(prepared); err != nil {
		return "", err
	}
	moved := map[string]bool{}
	for ref, sha := range m.branchHeads() {
		if before[ref] != sha {
			moved[sha] = true
		}
	}
	if len(moved) != 1 {
		return "", nil // nothing moved, or which one is the build's is unknown
	}
	commit := slices.Collect(maps.Keys(moved))[0]
	tmp := filepath.Join(prepared, commit+".tmp")
	if err := m.checkout(ctx, commit, tmp, false); err != nil {
		_ = os.RemoveAll(tmp)
		if errors.Is(err, errSubmodules) {
			return "", nil
		}
		return "", err
	}
	return commit, os.Rename(tmp, filepath.Join(prepared, commit))
}

// branchHeads reads the mirror's branches and the commits they point to
// from its files (loose refs override packed ones), as git does, without a
// git process.
func (m *Mirror) branchHeads() map[string]string {
	heads := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(m.Dir, "packed-refs")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			sha, ref, ok := strings.Cut(line, " ")
			if ok && shaRE.MatchString(sha) && strings.HasPrefix(ref, "refs/heads/") {
				heads[ref] = sha
			}
		}
	}
	root := filepath.Join(m.Dir, "refs", "heads")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if sha := strings.TrimSpace(string(b)); err == nil && shaRE.MatchString(sha) {
			rel, _ := filepath.Rel(root, p)
			heads["refs/heads/"+filepath.ToSlash(rel)] = sha
		}
		return nil
	})
	return heads
}

// prepared returns the checkout of commit Refresh made, or "".
func (m *Mirror) prepared(commit string) string {
	if m.Prepared == "" {
		return ""
	}
	p := filepath.Join(m.Prepared, commit)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Maintain runs git's automatic maintenance on the mirror (packing loose
// objects when there are enough of them), which fetches leave out. It is
// quick when there is nothing to do; run it after a build.
func (m *Mirror) Maintain(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(m.Dir, "HEAD")); err != nil {
		return nil
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = m.git(ctx, nil, "maintenance", "run", "--auto", "--quiet")
	return err
}

// Checkout writes the tree of commit (which must have been fetched) into
// dst, replacing whatever dst held, and checks out submodules. dst is a
// detached git worktree of the mirror; remove it with os.RemoveAll when
// done (the next Checkout prunes the mirror's record of it).
func (m *Mirror) Checkout(ctx context.Context, commit, dst string) error {
	if !shaRE.MatchString(commit) {
		return fmt.Errorf("checkout: %q is not a full commit SHA", commit)
	}
	if err := m.check(); err != nil {
		return err
	}
	if dst == "" {
		return errors.New("checkout: empty destination")
	}
	dst, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if p := m.prepared(commit); p != "" {
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Errorf("checkout: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("checkout: %w", err)
		}
		if err := os.Rename(p, dst); err == nil {
			return nil
		}
	}
	return m.checkout(ctx, commit, dst, true)
}

// errSubmodules: a checkout without submodules found some.
var errSubmodules = errors.New("the commit has submodules")

// checkout is Checkout; callers hold the lock. Without submodules, a
// commit that has some is errSubmodules.
func (m *Mirror) checkout(ctx context.Context, commit, dst string, submodules bool) error {
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	if err := m.pruneWorktrees(); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	if _, err := m.git(ctx, nil, "worktree", "add", "--detach", "--force", "--quiet", "--", dst, commit); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Asked only now, not before every checkout: one git process
		// fewer on the way to a build.
		if !m.has(ctx, commit) {
			return &NotFoundError{Commit: commit, Repo: redact(m.URL)}
		}
		return fmt.Errorf("checkout %s: %w", commit, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".gitmodules")); err == nil {
		if !submodules {
			return errSubmodules
		}
		// A submodule may live on the builder's own disk only if the
		// repository itself does (a project registered with a local
		// path): otherwise a repository could name another project's
		// mirror, or any repository on the host, as a submodule and copy
		// it into its build context. "user" is git's own default: file://
		// for commands a user runs, never for submodules.
		fileAllow := "user"
		if isLocal(m.URL) {
			fileAllow = "always"
		}
		if _, err := runGit(ctx, dst, nil, "-c", "protocol.file.allow="+fileAllow,
			"submodule", "update", "--init", "--recursive", "--quiet"); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if msg := gitMessage(err); strings.Contains(msg, "transport 'file' not allowed") {
				return &RefusedError{Reason: fmt.Sprintf("a submodule of commit %s is a local path or file:// URL, which a repository fetched from %s may not use: a build may only read repositories it fetches over the network", commit, redact(m.URL))}
			}
			return fmt.Errorf("checkout %s: submodules: %w", commit, err)
		}
	}
	return removeGitLinks(dst)
}

// RefusedError says a checkout was refused because the repository asked
// for something a build may not have; retrying cannot help.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return e.Reason }

// isLocal reports whether a repository URL names a repository on this
// machine: a file:// URL or a path.
func isLocal(u string) bool {
	if strings.HasPrefix(u, "file://") || strings.HasPrefix(u, "/") || strings.HasPrefix(u, ".") {
		return true
	}
	if pu, err := url.Parse(u); err == nil && pu.Scheme != "" {
		return false
	}
	return !strings.Contains(u, ":") // not scp-like host:path
}

// removeGitLinks deletes the .git files of the worktree and its submodules:
// they name the checkout's own path, so without this the build context (and
// podman's cache key of a COPY . .) would differ for every checkout of the
// same commit. They point outside the build context anyway.
func removeGitLinks(dst string) error {
	return filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" && d.Type().IsRegular() {
			return os.Remove(path)
		}
		return nil
	})
}

// ResolveRef returns the commit SHA that ref names on the repository at
// url (git ls-remote). ref is a branch or tag name ("main", "v1.2"), a full
// ref ("refs/heads/main") or HEAD; a full SHA is returned as is. Errors are
// *slipway.Error: EINVALID for a bad ref or an unreadable repository,
// ENOTFOUND for a ref the repository does not have.
func ResolveRef(ctx context.Context, url, ref string) (string, error) {
	if shaRE.MatchString(ref) {
		return ref, nil
	}
	if err := slipway.ValidateRepoURL(url); err != nil && !filepath.IsAbs(url) {
		return "", err
	}
	if ref != "HEAD" {
		if err := slipway.ValidateRef(ref); err != nil {
			return "", err
		}
	}
	var candidates []string
	switch {
	case ref == "HEAD" || strings.HasPrefix(ref, "refs/"):
		candidates = []string{ref}
	default:
		candidates = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	// The URL, which may hold a password, reaches git in its environment
	// (readable by its user alone), never in its argv (readable by every
	// local user in /proc): as the URL of a remote only this git knows.
	args := []string{"ls-remote", "--", resolveRemote}
	for _, c := range candidates {
		args = append(args, c, c+"^{}")
	}
	out, err := runGitEnv(ctx, "", nil, remoteEnv(resolveRemote, url), args...)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", slipway.Errorf(slipway.EINVALID, "cannot read repository %s: %s", redact(url), gitMessage(err))
	}
	found := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			found[name] = sha
		}
	}
	for _, c := range candidates {
		// An annotated tag's "^{}" line is the commit it points to.
		if sha, ok := found[c+"^{}"]; ok {
			return sha, nil
		}
		if sha, ok := found[c]; ok {
			return sha, nil
		}
	}
	return "", slipway.Errorf(slipway.ENOTFOUND, "ref %q not found in %s", ref, redact(url))
}

// check validates the Mirror's fields.
func (m *Mirror) check() error {
	if m.Dir == "" || m.URL == "" {
		return errors.New("gitmirror: Dir and URL are required")
	}
	if strings.HasPrefix(m.URL, "-") {
		return fmt.Errorf("gitmirror: invalid repository URL %q", m.URL)
	}
	return nil
}

// pruneWorktrees forgets the mirror's worktrees whose checkout is gone,
// as `git worktree prune` does (Checkout removes every checkout's .git
// file, so an earlier checkout's record always goes), without running a
// git process. Locked worktrees are kept. Callers hold the lock.
func (m *Mirror) pruneWorktrees() error {
	dir := filepath.Join(m.Dir, "worktrees")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range entries {
		wt := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(wt, "locked")); err == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(wt, "gitdir"))
		if err == nil {
			if _, err = os.Stat(strings.TrimSpace(string(b))); err == nil {
				continue
			}
		}
		if err := os.RemoveAll(wt); err != nil {
			return err
		}
	}
	return nil
}

// originURL is the URL of the mirror's origin as originFile says (when
// the mirror's config includes it), or as the config file of a mirror an
// older Slipway made says, or "" when neither says it plainly.
func (m *Mirror) originURL() string {
	b, err := os.ReadFile(filepath.Join(m.Dir, "config"))
	if err != nil {
		return ""
	}
	if strings.Contains(string(b), "path = "+originFile) {
		inc, err := os.ReadFile(filepath.Join(m.Dir, originFile))
		if err != nil {
			return ""
		}
		const pre, suf = "[remote \"origin\"]\n\turl = \"", "\"\n"
		v, ok := strings.CutPrefix(string(inc), pre)
		if v, ok2 := strings.CutSuffix(v, suf); ok && ok2 {
			if url := strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(v); originConfig(url) == string(inc) {
				return url
			}
		}
		return ""
	}
	inOrigin := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inOrigin = line == `[remote "origin"]`
			continue
		}
		if k, v, ok := strings.Cut(line, "="); inOrigin && ok && strings.TrimSpace(k) == "url" {
			v = strings.TrimSpace(v)
			if strings.ContainsAny(v, "\"\\;#") {
				return "" // quoted or escaped: let git read it
			}
			return v
		}
	}
	return ""
}

// resolveRemote is the name ResolveRef gives the repository it reads.
const resolveRemote = "slipway-resolve"

// remoteEnv is the environment that makes url the URL of remote for one
// git process (GIT_CONFIG_COUNT, git ≥ 2.31).
func remoteEnv(remote, url string) []string {
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=remote." + remote + ".url", "GIT_CONFIG_VALUE_0=" + url}
}

// originFile is the file, in the mirror, that holds origin's URL: the
// mirror's config includes it. Written by Slipway itself, so the URL
// (which may hold a password) is never on a git command line.
const originFile = "slipway-origin.config"

// originConfig is originFile's contents for url, quoted as git's config
// format wants.
func originConfig(url string) string {
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(url)
	return "[remote \"origin\"]\n\turl = \"" + q + "\"\n"
}

// ensure creates the bare mirror if missing and points origin at URL.
func (m *Mirror) ensure(ctx context.Context) error {
	// The steps below are quick and local, and a mirror left half made
	// (a build cancelled while it was being made) would fail every later
	// fetch: they run to their end whatever ctx does.
	ctx = context.WithoutCancel(ctx)
	if _, err := os.Stat(filepath.Join(m.Dir, "HEAD")); errors.Is(err, os.ErrNotExist) {
		if err := m.create(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	// The URL may have changed since the last fetch (a project edit). Read
	// from the file, unchanged, it costs no git process.
	if m.originURL() == m.URL {
		return nil
	}
	// A mirror an older Slipway made has the URL in its config: gone,
	// so that the included file is the one origin. The file is written
	// last: its URL says the steps before it were done.
	if _, err := m.git(ctx, nil, "config", "--unset-all", "remote.origin.url"); err != nil && exitCode(err) != 5 {
		return fmt.Errorf("gitmirror: %w", err)
	}
	if _, err := m.git(ctx, nil, "config", "--replace-all", "include.path", originFile); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, originFile), []byte(originConfig(m.URL)), 0o600); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	return nil
}

// create makes the bare mirror in a directory beside m.Dir and renames
// it into place, so that m.Dir is either no mirror or a whole one.
func (m *Mirror) create(ctx context.Context) error {
	if entries, _ := os.ReadDir(m.Dir); len(entries) > 0 {
		return fmt.Errorf("gitmirror: %s is not empty and not a git mirror", m.Dir)
	}
	if err := os.MkdirAll(filepath.Dir(m.Dir), 0o755); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(m.Dir), "."+filepath.Base(m.Dir)+".init-")
	if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := runGit(ctx, "", nil, "init", "--bare", "--quiet", "--", tmp); err != nil {
		return fmt.Errorf("gitmirror: init: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	if err := os.Remove(m.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gitmirror: %w", err)
	}
	if err := os.Rename(tmp, m.Dir); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	return nil
}

// exitCode is the exit status of the git that err reports, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// has reports whether the mirror holds commit.
func (m *Mirror) has(ctx context.Context, commit string) bool {
	_, err := m.git(ctx, nil, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}

// lock takes an exclusive lock on the mirror (a file beside it), so two
// fetches or checkouts on one volume do not trip over git's ref locks.
func (m *Mirror) lock(ctx context.Context) (func(), error) {
	p := filepath.Clean(m.Dir) + ".lock"
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("gitmirror: lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// git runs git on the mirror.
func (m *Mirror) git(ctx context.Context, out io.Writer, args ...string) (string, error) {
	return runGit(ctx, "", out, append([]string{"--git-dir=" + m.Dir}, args...)...)
}

// gitError is a failed git command with its (trimmed) stderr.
type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	if e.stderr == "" {
		return fmt.Sprintf("git %s: %v", e.args[0], e.err)
	}
	return fmt.Sprintf("git %s: %v: %s", e.args[0], e.err, e.stderr)
}

func (e *gitError) Unwrap() error { return e.err }

// gitMessage is git's own message for err, or err's text.
func gitMessage(err error) string {
	var ge *gitError
	if errors.As(err, &ge) && ge.stderr != "" {
		return ge.stderr
	}
	return err.Error()
}

// runGit runs git in dir (or the current directory) without prompts and
// returns its trimmed stdout. stderr goes to out, if any, and into the
// error.
func runGit(ctx context.Context, dir string, out io.Writer, args ...string) (string, error) {
	return runGitEnv(ctx, dir, out, nil, args...)
}

// runGitEnv is runGit with env added to git's environment.
func runGitEnv(ctx context.Context, dir string, out io.Writer, env []string, args ...string) (string, error) {
	full := append([]string{"-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never"), env...)
	if os.Getenv("GIT_SSH_COMMAND") == "" {
		cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	// git runs helpers (ssh, remote-https, upload-pack): cancel them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	var stdout strings.Builder
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout = &stdout
	if out != nil {
		cmd.Stderr = io.MultiWriter(stderr, out)
	} else {
		cmd.Stderr = stderr
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &gitError{args: args, err: err, stderr: redactText(strings.TrimSpace(stderr.String()))}
	}
	return strings.TrimSpace(stdout.String()), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// redact removes credentials from a repository URL for messages.
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		return u
	}
	pu.User = nil
	return pu.String()
}

var credRE = regexp.MustCompile(`(://)[^/@\s]+@`)

// redactText removes credentials from URLs inside git's messages.
func redactText(s string) string { return credRE.ReplaceAllString(s, "$1") }
