package process

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
)

// Isolation is how the provider keeps the builds of different projects
// apart.
type Isolation string

const (
	// IsolationRoot runs every agent, and so buildah, as the server's own
	// user (root): builds run in containers, but the agents themselves can
	// read every volume, and root buildah shares its blob-info cache
	// (/var/lib/containers/cache) between projects.
	IsolationRoot Isolation = "root"
	// IsolationRootless runs each project's agent as its own unprivileged
	// system user (see UserName) with a subordinate uid/gid range of
	// SubIDCount ids, so buildah runs rootless: storage, run root, blob-info
	// cache, cache mounts and temp dirs all live on the project's volume,
	// which only that user can open (mode 0700). RUN steps get a private
	// network (slirp4netns), so they cannot reach the server's loopback
	// services (registry, NATS, Temporal).
	IsolationRootless Isolation = "rootless"
)

// SubIDCount is the size of each builder user's subordinate uid and gid
// ranges: a full 16-bit id space, as buildah expects.
const SubIDCount = 65536

// firstSubID is where builder users' subordinate ranges start when
// /etc/subuid and /etc/subgid are empty (useradd's SUB_UID_MIN).
const firstSubID = 100000

// DefaultRuntimeBase is the directory holding one XDG_RUNTIME_DIR per
// rootless volume (buildah keeps runc's and the network's state there).
const DefaultRuntimeBase = "/run/slipway"

// ProbeUser is the builder user the rootless probe runs buildah as.
const ProbeUser = "slipway-probe"

// UserName returns the system user that runs project's agent in rootless
// mode: "slipway-<project>", or when that is longer than 32 characters
// (useradd's limit) a prefix of the project plus a hash of the whole name.
// Project names are lowercase letters, digits and dashes, so the result is
// a valid user name.
func UserName(project string) string {
	name := "slipway-" + project
	if len(name) <= 32 {
		return name
	}
	sum := sha256.Sum256([]byte(project))
	return "slipway-" + strings.TrimRight(project[:15], "-") + "-" + hex.EncodeToString(sum[:4])
}

// builderUser is an unprivileged user that runs one project's agent.
type builderUser struct {
	Name     string
	UID, GID int
}

// ensureUser creates the system user name if it does not exist, with no
// home directory and no login shell, and gives it subordinate uid and gid
// ranges of SubIDCount ids that overlap no one else's. Concurrent callers
// (also in other processes) are serialized by a lock file in lockDir.
func ensureUser(ctx context.Context, name, lockDir string) (builderUser, error) {
	unlock, err := lockUsers(lockDir)
	if err != nil {
		return builderUser{}, fmt.Errorf("builder user %s: %w", name, err)
	}
	defer unlock()

	u, err := user.Lookup(name)
	if errors.As(err, new(user.UnknownUserError)) {
		out, err := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--user-group", "--comment", builderComment, name).CombinedOutput()
		if err != nil {
			return builderUser{}, fmt.Errorf("create builder user %s: useradd: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		u, err = user.Lookup(name)
		if err != nil {
			return builderUser{}, fmt.Errorf("create builder user %s: %w", name, err)
		}
	} else if err != nil {
		return builderUser{}, fmt.Errorf("look up builder user %s: %w", name, err)
	}
	bu := builderUser{Name: name}
	bu.UID, _ = strconv.Atoi(u.Uid)
	bu.GID, _ = strconv.Atoi(u.Gid)
	if bu.UID == 0 {
		return builderUser{}, fmt.Errorf("builder user %s has uid 0", name)
	}

	uids, err := readSubIDs("/etc/subuid")
	if err != nil {
		return builderUser{}, err
	}
	gids, err := readSubIDs("/etc/subgid")
	if err != nil {
		return builderUser{}, err
	}
	if hasRange(uids, bu) && hasRange(gids, bu) {
		return bu, nil
	}
	// One range, the same for uids and gids, past every range already
	// given out in either file.
	next := int64(firstSubID)
	for _, r := range append(uids, gids...) {
		next = max(next, r.start+r.count)
	}
	next = (next + SubIDCount - 1) / SubIDCount * SubIDCount
	span := fmt.Sprintf("%d-%d", next, next+SubIDCount-1)
	out, err := exec.CommandContext(ctx, "usermod", "--add-subuids", span, "--add-subgids", span, name).CombinedOutput()
	if err != nil {
		return builderUser{}, fmt.Errorf("give builder user %s subordinate ids %s: usermod: %v: %s", name, span, err, strings.TrimSpace(string(out)))
	}
	return bu, nil
}

// killMachineProcesses kills the processes of builder user u (its uid, or
// an id of its subordinate ranges: its build containers) that work for the
// machine whose volume is vol and runtime directory rt: their command line,
// working or root directory is in vol, or their XDG_RUNTIME_DIR is rt.
// buildah and its build containers run in process groups of their own and
// outlive a stopped agent; a volume must not be written while it is
// removed, nor can a user be removed while it runs processes. It waits up
// to 15 s for them to be gone.
func killMachineProcesses(u builderUser, vol, rt string) {
	uids, _ := readSubIDs("/etc/subuid")
	mine := func(uid int64) bool {
		if uid == int64(u.UID) {
			return true
		}
		for _, r := range uids {
			if (r.owner == u.Name || r.owner == strconv.Itoa(u.UID)) && uid >= r.start && uid < r.start+r.count {
				return true
			}
		}
		return false
	}
	in := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		found := false
		procs, _ := os.ReadDir("/proc")
		for _, e := range procs {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid <= 1 {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name(), &st) != nil || !mine(int64(st.Uid)) {
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			environ, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
			cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
			root, _ := os.Readlink("/proc/" + e.Name() + "/root")
			if strings.Contains(string(cmdline), vol+"/") || in(cwd, vol) || in(root, vol) ||
				strings.Contains("\x00"+string(environ)+"\x00", "\x00XDG_RUNTIME_DIR="+rt+"\x00") {
				if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && strings.Contains(string(stat), ") Z ") {
					continue // a zombie: its parent reaps it
				}
				found = true
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !found {
			return
		}
	}
}

// lockUsers serializes the changes of builder users (and their subordinate
// ids) across processes, by a lock file in lockDir.
func lockUsers(lockDir string) (unlock func(), err error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(lockDir, "users.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() {
		_ = unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		lock.Close()
	}, nil
}

// builderComment marks the users ensureUser created (their GECOS field):
// removeUser removes no other.
const builderComment = "Slipway builder"

// removeUser removes the builder user name that ensureUser created, with
// its group and its /etc/subuid and /etc/subgid ranges. A user that does
// not exist is no error; one whose name does not start with "slipway-" or
// that lacks the builderComment mark is not Slipway's and is refused, as is
// one that still runs processes (userdel refuses it: another server's
// agent of a same-named project, say). removed says whether it was there.
func removeUser(ctx context.Context, name, lockDir string) (removed bool, err error) {
	if !strings.HasPrefix(name, "slipway-") {
		return false, fmt.Errorf("remove builder user %s: not a Slipway builder's name", name)
	}
	unlock, err := lockUsers(lockDir)
	if err != nil {
		return false, fmt.Errorf("remove builder user %s: %w", name, err)
	}
	defer unlock()

	u, err := user.Lookup(name)
	if errors.As(err, new(user.UnknownUserError)) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("look up builder user %s: %w", name, err)
	}
	if u.Name != builderComment || u.Uid == "0" {
		return false, fmt.Errorf("user %s was not created by Slipway (its comment is %q, not %q): left alone", name, u.Name, builderComment)
	}
	// The ranges first, while the user exists for usermod to find.
	var args []string
	for _, f := range []struct{ file, flag string }{{"/etc/subuid", "--del-subuids"}, {"/etc/subgid", "--del-subgids"}} {
		rs, err := readSubIDs(f.file)
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			if r.owner == name || r.owner == u.Uid {
				args = append(args, f.flag, fmt.Sprintf("%d-%d", r.start, r.start+r.count-1))
			}
		}
	}
	if len(args) > 0 {
		if out, err := exec.CommandContext(ctx, "usermod", append(args, name)...).CombinedOutput(); err != nil {
			return false, fmt.Errorf("remove the subordinate ids of builder user %s: usermod: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
	}
	if out, err := exec.CommandContext(ctx, "userdel", name).CombinedOutput(); err != nil {
		return false, fmt.Errorf("remove builder user %s: userdel: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// subIDRange is one line of /etc/subuid or /etc/subgid.
type subIDRange struct {
	owner        string // user name or uid
	start, count int64
}

func readSubIDs(path string) ([]subIDRange, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	var rs []subIDRange
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 {
			continue
		}
		start, err1 := strconv.ParseInt(parts[1], 10, 64)
		count, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rs = append(rs, subIDRange{owner: parts[0], start: start, count: count})
	}
	return rs, sc.Err()
}

func hasRange(rs []subIDRange, u builderUser) bool {
	for _, r := range rs {
		if (r.owner == u.Name || r.owner == strconv.Itoa(u.UID)) && r.count >= SubIDCount {
			return true
		}
	}
	return false
}

// runtimeDir is the XDG_RUNTIME_DIR of the rootless agent whose volume is
// vol: short (buildah limits some paths to 50 characters) and one per
// volume, so volumes share no runtime state.
func runtimeDir(base, vol string) string {
	sum := sha256.Sum256([]byte(vol))
	return filepath.Join(base, hex.EncodeToString(sum[:8]))
}

// rootlessEnv is the environment of a rootless agent (or probe) whose
// volume is laid out as l: home, XDG directories and temp dir on the
// volume, the runtime dir rt.
func rootlessEnv(u builderUser, l builder.Layout, rt string) []string {
	home := l.Home
	return []string{
		"HOME=" + home,
		"USER=" + u.Name,
		"LOGNAME=" + u.Name,
		"XDG_RUNTIME_DIR=" + rt,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"TMPDIR=" + l.Tmp,
	}
}

// credential makes cmd run as u, with no supplementary groups.
func credential(u builderUser) *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}, NoSetGroups: false}
}

// prepareVolume makes the volume vol belong to uid:gid with mode 0700 and
// creates its temp directory, and for a rootless agent (home) its home
// directory with a git configuration. A volume that belongs to someone
// else (it was used in the other isolation mode, or by a user that was
// recreated with another uid) is emptied first: it is only a cache.
func prepareVolume(vol string, uid, gid int, home bool) (wiped bool, err error) {
	layout := builder.VolumeLayout(vol)
	if err := os.MkdirAll(vol, 0o700); err != nil {
		return false, err
	}
	var st unix.Stat_t
	if err := unix.Stat(vol, &st); err != nil {
		return false, err
	}
	if int(st.Uid) != uid {
		entries, err := os.ReadDir(vol)
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(vol, e.Name())); err != nil {
				return false, fmt.Errorf("empty volume %s: %w", vol, err)
			}
		}
		wiped = len(entries) > 0
	}
	if err := os.Chown(vol, uid, gid); err != nil {
		return wiped, err
	}
	if err := os.Chmod(vol, 0o700); err != nil {
		return wiped, err
	}
	dirs := []string{layout.Tmp}
	if home {
		dirs = append(dirs, layout.Home)
	}
	for _, p := range dirs {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return wiped, err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return wiped, err
		}
	}
	if !home {
		return wiped, nil
	}
	// git refuses to fetch from a repository another user owns (a local
	// file:// repository of the server's user, say) unless told to.
	gitconfig := filepath.Join(layout.Home, ".gitconfig")
	if _, err := os.Lstat(gitconfig); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(gitconfig, []byte("# Written by Slipway: the builder fetches repositories other users own.\n[safe]\n\tdirectory = *\n"), 0o644); err != nil {
			return wiped, err
		}
		if err := os.Lchown(gitconfig, uid, gid); err != nil {
			return wiped, err
		}
	}
	return wiped, nil
}

// prepareRuntimeDir creates the runtime dir rt owned by u, mode 0700.
func prepareRuntimeDir(rt string, u builderUser) error {
	if err := os.MkdirAll(filepath.Dir(rt), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(rt, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Lchown(rt, u.UID, u.GID); err != nil {
		return err
	}
	return os.Chmod(rt, 0o700)
}

// stopPause kills the podman pause process that keeps a rootless user's
// namespaces alive between podman commands, if rt names one of uid's:
// agents before buildah ran podman 4.3. An agent that sleeps needs none,
// and a volume deleted later must not stay reachable through it.
func stopPause(rt string, uid int) {
	b, err := os.ReadFile(filepath.Join(rt, "libpod", "tmp", "pause.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d", pid), &st) != nil || int(st.Uid) != uid {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// RootlessProbe is what ProbeRootless found out.
type RootlessProbe struct {
	// Storage describes buildah's storage driver for rootless users, e.g.
	// "native overlay" or "overlay via fuse-overlayfs".
	Storage string
	// ProbedAt is when buildah ran as ProbeUser for this verdict (set by
	// ProbeRootlessCached).
	ProbedAt time.Time
	// Cached says the verdict was kept from ProbedAt, without running
	// buildah; Reprobed says why buildah ran again (ProbeRootlessCached).
	Cached   bool
	Reprobed string
}

// ProbeRootless checks that this host can run agents rootless: the server
// runs as root (it creates the builder users), the tools are there
// (useradd, usermod, newuidmap, newgidmap, slirp4netns, the builder),
// user namespaces are allowed, /dev/net/tun is usable by unprivileged
// users (for the RUN steps' private network), every parent of volumesDir,
// of the agent executable (default DefaultBinary) and of the builder lets
// other users through, and buildah runs as the builder user ProbeUser with
// its storage on a scratch volume under volumesDir. The error says what is
// missing and how to fix it.
func ProbeRootless(ctx context.Context, volumesDir, agentBinary, runtimeBase string) (RootlessProbe, error) {
	if err := checkRootlessHost(volumesDir, agentBinary); err != nil {
		return RootlessProbe{}, err
	}
	return probeBuilder(ctx, volumesDir, runtimeBase)
}

// checkRootlessHost runs ProbeRootless's quick checks, all but buildah's.
func checkRootlessHost(volumesDir, agentBinary string) error {
	if os.Geteuid() != 0 {
		return errors.New("the server does not run as root, so it cannot create a user per project")
	}
	for _, tool := range []struct{ bin, pkg string }{
		{"useradd", "passwd"}, {"usermod", "passwd"}, {"newuidmap", "uidmap"}, {"newgidmap", "uidmap"},
		{"slirp4netns", "slirp4netns"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install %s, or run scripts/setup)", tool.bin, tool.pkg)
		}
	}
	for _, bin := range []string{buildah.DefaultBinary, buildah.DefaultRuntime} {
		st, err := os.Stat(bin)
		if err != nil {
			return fmt.Errorf("%s is not installed (%s)", bin, buildah.SetupHint)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is mode %04o: builder users cannot run it (chmod o+rx %s)", bin, st.Mode().Perm(), bin)
		}
		if err := othersCanReach(bin, "run the builder"); err != nil {
			return err
		}
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("user namespaces are disabled (sysctl user.max_user_namespaces = 0)")
	}
	if st, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("/dev/net/tun is missing, so RUN steps of a rootless build get no private network: %v", err)
	} else if st.Mode().Perm()&0o006 != 0o006 {
		return fmt.Errorf("/dev/net/tun is mode %04o, so RUN steps of a rootless build get no private network (scripts/setup makes it 0666, as most distributions ship it)", st.Mode().Perm())
	}
	if err := othersCanReach(volumesDir, "reach their volumes"); err != nil {
		return err
	}
	if agentBinary == "" {
		bin, err := DefaultBinary()
		if err != nil {
			return err
		}
		agentBinary = bin
	}
	if err := othersCanReach(agentBinary, "run the agent"); err != nil {
		return err
	}
	if st, err := os.Stat(agentBinary); err != nil {
		return err
	} else if st.Mode().Perm()&0o001 == 0 {
		return fmt.Errorf("the agent %s is mode %04o: builder users cannot run it (chmod o+rx %s)", agentBinary, st.Mode().Perm(), agentBinary)
	}
	return nil
}

// probeBuilder runs buildah info as ProbeUser with its storage on a
// scratch volume under volumesDir, as an agent would: the slow part of
// ProbeRootless.
func probeBuilder(ctx context.Context, volumesDir, runtimeBase string) (RootlessProbe, error) {
	if runtimeBase == "" {
		runtimeBase = DefaultRuntimeBase
	}
	u, err := ensureUser(ctx, ProbeUser, runtimeBase)
	if err != nil {
		return RootlessProbe{}, err
	}
	if err := os.MkdirAll(volumesDir, 0o711); err != nil {
		return RootlessProbe{}, err
	}
	vol, err := os.MkdirTemp(volumesDir, ".probe-")
	if err != nil {
		return RootlessProbe{}, err
	}
	defer os.RemoveAll(vol)
	layout := builder.VolumeLayout(vol)
	if _, err := prepareVolume(vol, u.UID, u.GID, true); err != nil {
		return RootlessProbe{}, err
	}
	rt := runtimeDir(runtimeBase, vol)
	if err := prepareRuntimeDir(rt, u); err != nil {
		return RootlessProbe{}, err
	}
	defer os.RemoveAll(rt)
	defer stopPause(rt, u.UID)
	// Made as root here, used by the builder user: the run root must be
	// one the user can write (the agent finds one by itself).
	bcfg := buildah.ConfigAt(layout.Builder)
	bcfg.RunRoot = filepath.Join(rt, "run")
	b, err := buildah.New(ctx, bcfg)
	if err != nil {
		return RootlessProbe{}, err
	}
	// A run root too long for buildah moved to a short path outside rt.
	if runRoot := b.Config().RunRoot; !strings.HasPrefix(runRoot, rt+"/") {
		defer os.RemoveAll(runRoot)
	}
	for _, d := range []string{layout.Builder, rt, b.Config().RunRoot} {
		if err := chownTree(d, u.UID, u.GID); err != nil {
			return RootlessProbe{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := b.Command(ctx, "info")
	cmd.Env = append(cmd.Env, rootlessEnv(u, layout, rt)...)
	cmd.SysProcAttr.Credential = credential(u)
	cmd.Dir = vol
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return RootlessProbe{}, fmt.Errorf("buildah info as user %s failed: %v: %s", u.Name, err, lastLines(stderr.String(), 3))
	}
	storage, err := rootlessStorage(stdout.String())
	if err != nil {
		return RootlessProbe{}, fmt.Errorf("buildah info as user %s: %w", u.Name, err)
	}
	return RootlessProbe{Storage: storage}, nil
}

// rootlessStorage reads buildah info's JSON: it must say rootless, and
// names the storage driver ("native overlay" when the kernel's overlay
// does it alone).
func rootlessStorage(infoJSON string) (string, error) {
	var info struct {
		Host struct {
			Rootless bool `json:"rootless"`
		} `json:"host"`
		Store struct {
			GraphDriverName string            `json:"GraphDriverName"`
			GraphOptions    []string          `json:"GraphOptions"`
			GraphStatus     map[string]string `json:"GraphStatus"`
		} `json:"store"`
	}
	if err := json.Unmarshal([]byte(infoJSON), &info); err != nil {
		return "", err
	}
	if !info.Host.Rootless {
		return "", errors.New("it does not report rootless")
	}
	storage := info.Store.GraphDriverName
	if storage == "overlay" {
		storage = "native overlay"
		for _, o := range info.Store.GraphOptions {
			if k, v, _ := strings.Cut(o, "="); strings.HasSuffix(k, "mount_program") {
				storage = "overlay via " + v
			}
		}
		if info.Store.GraphStatus["Native Overlay Diff"] != "true" && storage == "native overlay" {
			storage = "overlay (no native diff)"
		}
	}
	return storage, nil
}

// chownTree gives everything under dir to uid:gid.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// lastLines returns the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// othersCanReach checks that users other than the server's may pass
// through every parent directory of path, to do what.
func othersCanReach(path, what string) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is mode %04o: builder users cannot %s under it (let others pass through it: chmod o+x %s)", dir, st.Mode().Perm(), what, dir)
		}
		if dir == "/" {
			return nil
		}
	}
}
