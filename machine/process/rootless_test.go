package process

import (
	"os/user"
	"regexp"
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
