package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// probeCacheVersion changes when the probe, or what its verdict depends
// on, changes: a verdict kept by another version is probed again.
const probeCacheVersion = "2"

// ProbeRootlessCached is ProbeRootless whose slow part (buildah info as
// ProbeUser, about a second) runs only when what its verdict depends on
// changed since the verdict kept in cacheFile: the buildah, runtime,
// runc, slirp4netns, newuidmap and newgidmap executables and the
// containers configuration files (path, size, time), the kernel release,
// the user namespace limit, /dev/net/tun's mode, ProbeUser's uid and its
// /etc/subuid and /etc/subgid ranges, and the file system of volumesDir. The quick checks run every
// time. Only a success is kept: a host that failed is probed again at the
// next start. The result says whether it came from the cache
// (RootlessProbe.Cached) or why the probe ran again (Reprobed).
func ProbeRootlessCached(ctx context.Context, volumesDir, agentBinary, runtimeBase, cacheFile string) (RootlessProbe, error) {
	if err := checkRootlessHost(volumesDir, agentBinary); err != nil {
		return RootlessProbe{}, err
	}
	c := probeCache{path: cacheFile, inputs: func() map[string]string { return probeInputs(volumesDir, defaultHostFiles) }}
	return c.probe(ctx, func(ctx context.Context) (RootlessProbe, error) {
		return probeBuilder(ctx, volumesDir, runtimeBase)
	})
}

// probeCache keeps the verdict of a slow probe in a file, with the inputs
// it was reached with.
type probeCache struct {
	path   string
	inputs func() map[string]string
}

// probeRecord is the cache file's content.
type probeRecord struct {
	Inputs   map[string]string `json:"inputs"`
	Storage  string            `json:"storage"`
	ProbedAt time.Time         `json:"probedAt"`
}

// probe returns the kept verdict when its inputs are today's, else runs
// slow and keeps a success.
func (c probeCache) probe(ctx context.Context, slow func(context.Context) (RootlessProbe, error)) (RootlessProbe, error) {
	now := c.inputs()
	var kept probeRecord
	why := "no verdict kept"
	if b, err := os.ReadFile(c.path); err == nil {
		if json.Unmarshal(b, &kept) != nil || kept.Inputs == nil {
			why = "the kept verdict is unreadable"
		} else if changed := changedInputs(kept.Inputs, now); len(changed) > 0 {
			why = strings.Join(changed, ", ") + " changed"
		} else {
			return RootlessProbe{Storage: kept.Storage, Cached: true, ProbedAt: kept.ProbedAt}, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		why = fmt.Sprintf("the kept verdict is unreadable (%v)", err)
	}
	p, err := slow(ctx)
	if err != nil {
		// Nothing is kept: whatever failed may be fixed by the next start.
		_ = os.Remove(c.path)
		return RootlessProbe{}, err
	}
	p.ProbedAt, p.Reprobed = time.Now().UTC(), why
	b, _ := json.MarshalIndent(probeRecord{Inputs: now, Storage: p.Storage, ProbedAt: p.ProbedAt}, "", "  ")
	// The verdict saves time only: failing to keep it fails nothing.
	_ = atomicfile.Write(c.path, append(b, '\n'), 0o600)
	return p, nil
}

// changedInputs names the inputs whose values differ between was and now.
func changedInputs(was, now map[string]string) []string {
	var changed []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if v, ok := was[k]; !ok || v != now[k] {
			changed = append(changed, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(was)) {
		if _, ok := now[k]; !ok {
			changed = append(changed, k)
		}
	}
	return changed
}

// hostFiles are the host's files the probe's verdict depends on.
type hostFiles struct {
	Tun, SubUID, SubGID, MaxUserNS string
	// Tools are looked up on PATH; Configs are read if they exist.
	Tools, Configs []string
	// User is the probe's user.
	User string
}

var defaultHostFiles = hostFiles{
	Tun: "/dev/net/tun", SubUID: "/etc/subuid", SubGID: "/etc/subgid", MaxUserNS: "/proc/sys/user/max_user_namespaces",
	Tools: []string{buildah.DefaultBinary, buildah.DefaultRuntime, "slirp4netns", "newuidmap", "newgidmap", "runc"},
	Configs: []string{"/etc/containers/storage.conf", "/etc/containers/containers.conf", "/usr/share/containers/containers.conf",
		"/usr/share/containers/storage.conf"},
	User: ProbeUser,
}

// probeInputs returns what the slow probe's verdict depends on, one short
// value each, named for the server's log ("kernel release changed").
func probeInputs(volumesDir string, h hostFiles) map[string]string {
	in := map[string]string{"probe version": probeCacheVersion}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		in["kernel release"] = unix.ByteSliceToString(uts.Release[:])
	}
	for _, tool := range h.Tools {
		in[tool] = "not installed"
		if p, err := exec.LookPath(tool); err == nil {
			in[tool] = fileStamp(p)
		}
	}
	for _, f := range h.Configs {
		in[f] = fileStamp(f)
	}
	in[h.Tun] = "missing"
	if st, err := os.Stat(h.Tun); err == nil {
		in[h.Tun] = st.Mode().String()
	}
	in["user namespaces"] = "?"
	if b, err := os.ReadFile(h.MaxUserNS); err == nil {
		in["user namespaces"] = strings.TrimSpace(string(b))
	}
	uid := ""
	in["user "+h.User] = "missing"
	if u, err := user.Lookup(h.User); err == nil {
		uid = u.Uid
		in["user "+h.User] = u.Uid + ":" + u.Gid
	}
	for _, f := range []string{h.SubUID, h.SubGID} {
		var own []string
		rs, err := readSubIDs(f)
		if err != nil {
			own = []string{err.Error()}
		}
		for _, r := range rs {
			if r.owner == h.User || (uid != "" && r.owner == uid) {
				own = append(own, fmt.Sprintf("%s:%d:%d", r.owner, r.start, r.count))
			}
		}
		in[f] = strings.Join(own, " ")
	}
	in["volumes file system"] = "?"
	var st unix.Statfs_t
	if unix.Statfs(volumesDir, &st) == nil {
		in["volumes file system"] = fmt.Sprintf("%s type %#x", filepath.Clean(volumesDir), st.Type)
	}
	return in
}

// fileStamp identifies a file's version without reading it: where it
// resolves to, its mode, size and modification time.
func fileStamp(path string) string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "missing"
	}
	st, err := os.Stat(real)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%s %v %d %d", real, st.Mode(), st.Size(), st.ModTime().UnixNano())
}
