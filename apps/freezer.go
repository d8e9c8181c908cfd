package apps

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// freezer is the cgroup freezer of one container: with cgroup v1 (these
// machines' hybrid layout) its freezer.state, with cgroup v2 its
// cgroup.freeze. Freezing writes the file; no podman command runs.
type freezer struct {
	// file is freezer.state (v1) or cgroup.freeze (v2).
	file string
	v2   bool
}

// freezerOf finds the freezer of the cgroup the process pid (a
// container's first process) is in.
func freezerOf(pid int) (freezer, error) {
	if pid <= 0 {
		return freezer{}, errors.New("it has no process")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return freezer{}, err
	}
	defer f.Close()
	var unified string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "freezer") {
			return freezer{file: filepath.Join(cgroupRoot, "freezer", parts[2], "freezer.state")}, nil
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if err := sc.Err(); err != nil {
		return freezer{}, err
	}
	var st unix.Statfs_t
	if unified != "" && unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return freezer{file: filepath.Join(cgroupRoot, unified, "cgroup.freeze"), v2: true}, nil
	}
	return freezer{}, fmt.Errorf("process %d is in no freezer cgroup", pid)
}

// freeze pauses every process of the cgroup and waits (up to 10 s) until
// they are all paused.
func (f freezer) freeze() error {
	want := "FROZEN"
	if f.v2 {
		want = "1"
	}
	if err := os.WriteFile(f.file, []byte(want), 0); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		frozen, err := f.frozenFully()
		if err != nil {
			return err
		}
		if frozen {
			return nil
		}
		if time.Now().After(deadline) {
			_ = f.thaw()
			return errors.New("freeze: its processes did not all stop within 10s")
		}
		time.Sleep(wait)
	}
}

// thaw lets the cgroup's processes run again.
func (f freezer) thaw() error {
	v := "THAWED"
	if f.v2 {
		v = "0"
	}
	if err := os.WriteFile(f.file, []byte(v), 0); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	return nil
}

// frozen says whether the cgroup was asked to freeze (it may still be
// freezing).
func (f freezer) frozen() (bool, error) {
	b, err := os.ReadFile(f.file)
	if err != nil {
		return false, err
	}
	s := strings.TrimSpace(string(b))
	if f.v2 {
		return s == "1", nil
	}
	return s == "FROZEN" || s == "FREEZING", nil
}

// frozenFully says whether every process of the cgroup is paused.
func (f freezer) frozenFully() (bool, error) {
	if !f.v2 {
		b, err := os.ReadFile(f.file)
		return strings.TrimSpace(string(b)) == "FROZEN", err
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(f.file), "cgroup.events"))
	if err != nil {
		return false, err
	}
	return slices.Contains(strings.Split(string(b), "\n"), "frozen 1"), nil
}

// procs lists the processes of the cgroup.
func (f freezer) procs() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(f.file), "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}
