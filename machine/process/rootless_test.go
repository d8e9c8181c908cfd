package process

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUserName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
	long := strings.Repeat("abcdefgh-", 7)
	for _, tc := range []struct{ project, want string }{
		{"app", "slipway-app"},
		{"a", "slipway-a"},
		{"exactly-twenty-four-char", "slipway-exactly-twenty-four-char"},
		{long, "slipway-abcdefgh-abcdef-" + UserName(long)[len(UserName(long))-8:]},
	} {
		got := UserName(tc.project)
		if got != tc.want || len(got) > 32 || !valid.MatchString(got) {
			t.Errorf("UserName(%q) = %q, want %q (a valid user name of at most 32 characters)", tc.project, got, tc.want)
		}
	}
	if UserName(long) == UserName(long+"x") {
		t.Errorf("UserName(%q) = UserName(%q): long names must not collide", long, long+"x")
	}
}

// Builder users are real system users with subordinate ranges that overlap
// no one else's, and creating one twice is a no-op.
func TestEnsureUser(t *testing.T) {
	ctx := t.Context()
	lockDir := t.TempDir()
	var users []builderUser
	for _, name := range []string{"slipway-test-one", "slipway-test-two", "slipway-test-one"} {
		u, err := ensureUser(ctx, name, lockDir)
		if err != nil {
			t.Fatalf("ensureUser(%q): %v", name, err)
		}
		if lu, err := user.Lookup(name); err != nil || lu.Uid == "0" {
			t.Fatalf("user %s: %v %+v", name, err, lu)
		}
		users = append(users, u)
	}
	if users[0] != users[2] {
		t.Errorf("ensureUser twice: %+v then %+v", users[0], users[2])
	}
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		rs, err := readSubIDs(file)
		if err != nil {
			t.Fatal(err)
		}
		var mine []subIDRange
		for _, r := range rs {
			if r.owner == "slipway-test-one" || r.owner == "slipway-test-two" {
				mine = append(mine, r)
			}
		}
		if len(mine) != 2 {
			t.Fatalf("%s holds %d ranges of the test users, want 2: %+v", file, len(mine), mine)
		}
		for _, r := range mine {
			if r.count != SubIDCount {
				t.Errorf("%s: %+v, want %d ids", file, r, SubIDCount)
			}
			for _, o := range rs {
				if o != r && o.start < r.start+r.count && r.start < o.start+o.count {
					t.Errorf("%s: range %+v overlaps %+v", file, r, o)
				}
			}
		}
	}
}

func TestRemoveUser(t *testing.T) {
	ctx := t.Context()
	lockDir := t.TempDir()
	const name = "slipway-test-removed"
	u, err := ensureUser(ctx, name, lockDir)
	if err != nil {
		t.Fatal(err)
	}
	owned := func() (n int) {
		t.Helper()
		for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
			rs, err := readSubIDs(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.owner == name || r.owner == strconv.Itoa(u.UID) {
					n++
				}
			}
		}
		return n
	}
	if owned() != 2 {
		t.Fatalf("%s owns %d subordinate ranges before removal, want 2", name, owned())
	}
	if removed, err := removeUser(ctx, name, lockDir); err != nil || !removed {
		t.Fatalf("removeUser(%s) = %v, %v", name, removed, err)
	}
	if _, err := user.Lookup(name); err == nil {
		t.Errorf("user %s still exists", name)
	}
	if _, err := user.LookupGroup(name); err == nil {
		t.Errorf("group %s still exists", name)
	}
	if n := owned(); n != 0 {
		t.Errorf("%d subordinate ranges of %s are left", n, name)
	}
	if removed, err := removeUser(ctx, name, lockDir); err != nil || removed {
		t.Errorf("removeUser of a user that is gone = %v, %v; want false, nil", removed, err)
	}

	// A user Slipway did not create is left alone, whatever its name.
	const alien = "slipway-test-alien"
	if _, err := user.Lookup(alien); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--comment", "someone else", alien).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v %s", alien, err, out)
		}
	}
	if removed, err := removeUser(ctx, alien, lockDir); err == nil || removed || !strings.Contains(err.Error(), "not created by Slipway") {
		t.Errorf("removeUser(%s) = %v, %v; want a refusal", alien, removed, err)
	}
	if _, err := user.Lookup(alien); err != nil {
		t.Errorf("the user Slipway did not create was removed: %v", err)
	}
	if removed, err := removeUser(ctx, "root", lockDir); err == nil || removed {
		t.Errorf("removeUser(root) = %v, %v; want a refusal", removed, err)
	}
}

// The probe runs buildah as the probe user, the way an agent runs it, and
// finds native overlay on this host.
func TestProbeRootless(t *testing.T) {
	volumes := t.TempDir()
	// Builder users pass through the test's directories to their volumes.
	for _, d := range []string{filepath.Dir(volumes), volumes} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	runtimeBase := t.TempDir()
	probe, err := ProbeRootless(t.Context(), volumes, "/usr/bin/env", runtimeBase)
	if err != nil {
		t.Fatalf("ProbeRootless: %v", err)
	}
	if probe.Storage != "native overlay" {
		t.Errorf("rootless storage = %q, want native overlay", probe.Storage)
	}
	if entries, _ := os.ReadDir(volumes); len(entries) != 0 {
		t.Errorf("the probe left %d entries in the volumes directory", len(entries))
	}
}
