package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The attack suite: each attack on the internal services is recorded with
// attack (or run as an unprivileged local user with attackAsNobody) and
// must be blocked; TestMain prints the tally,
//
//	attacks tried N, blocked N; secrets seen by outsiders 0; foreign images written 0
//
// and fails the run if any attack got through, any secret was seen, or any
// image was written by an outsider.

// AttackReportEnv names a file the tally line is also written to.
const AttackReportEnv = "SLIPWAY_ATTACK_REPORT"

// attackResult is what one attack achieved (the attacker program prints
// it as JSON: e2e/attacker.Result).
type attackResult struct {
	Blocked bool     `json:"blocked"`
	Detail  string   `json:"detail"`
	Seen    []string `json:"seen"`
	Wrote   bool     `json:"wrote"`
}

var tally struct {
	mu                                  sync.Mutex
	tried, blocked, secrets, foreignImg int
	failed                              []string
}

// attack records the outcome of one attack named name and fails t if it
// got through, if anything it saw contains one of secrets, or if it wrote
// an image (image says whether a write would have been an image).
func attack(t *testing.T, name string, r attackResult, secrets ...string) {
	t.Helper()
	seen := 0
	for _, s := range secrets {
		if s == "" {
			t.Fatalf("attack %s: an empty secret to look for", name)
		}
		for _, v := range r.Seen {
			if strings.Contains(v, s) {
				seen++
				break
			}
		}
	}
	tally.mu.Lock()
	tally.tried++
	if r.Blocked && !r.Wrote {
		tally.blocked++
	} else {
		tally.failed = append(tally.failed, name)
	}
	tally.secrets += seen
	tally.mu.Unlock()
	switch {
	case !r.Blocked || r.Wrote:
		t.Errorf("attack %q got through: %s", name, r.Detail)
	case seen > 0:
		t.Errorf("attack %q was blocked but saw %d secret(s): %s", name, seen, r.Detail)
	default:
		t.Logf("attack %q blocked: %s", name, r.Detail)
	}
}

// foreignImageWritten records an image written by an outsider.
func foreignImageWritten(t *testing.T, name, ref string) {
	t.Helper()
	tally.mu.Lock()
	tally.foreignImg++
	tally.mu.Unlock()
	t.Errorf("attack %q wrote the image %s", name, ref)
}

// attackAsNobody runs `attacker NAME ARGS...` as the user nobody and
// records its result like attack.
func attackAsNobody(t *testing.T, name string, args []string, secrets ...string) attackResult {
	t.Helper()
	r := runAttacker(t, name, args...)
	attack(t, name, r, secrets...)
	return r
}

// runAttacker runs the attacker program as nobody and returns what it
// printed.
func runAttacker(t *testing.T, name string, args ...string) attackResult {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the attack suite runs as nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(attackerBin, append([]string{name}, args...)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("attacker %s: %v", name, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("attacker %s did not finish within 2 minutes:\n%s", name, stderr.String())
	}
	if err != nil {
		t.Fatalf("attacker %s: %v\n%s", name, err, stderr.String())
	}
	var r attackResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("attacker %s printed %q: %v\n%s", name, stdout.String(), err, stderr.String())
	}
	return r
}

// attackTally prints the suite's line and says whether it passed (true
// if no attack ran at all: a run of other tests).
func attackTally() bool {
	tally.mu.Lock()
	defer tally.mu.Unlock()
	if tally.tried == 0 {
		return true
	}
	line := fmt.Sprintf("attacks tried %d, blocked %d; secrets seen by outsiders %d; foreign images written %d\n",
		tally.tried, tally.blocked, tally.secrets, tally.foreignImg)
	if len(tally.failed) > 0 {
		line += fmt.Sprintf("attacks that got through: %s\n", strings.Join(tally.failed, ", "))
	}
	fmt.Print(line)
	// go test shows a passing package's output only with -v: scripts/test
	// names a file here and prints it after the run.
	if path := os.Getenv(AttackReportEnv); path != "" {
		if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "attack report: %v\n", err)
			return false
		}
	}
	return tally.tried == tally.blocked && tally.secrets == 0 && tally.foreignImg == 0
}

// The suite's plumbing: the attacker really runs as nobody.
func TestAttackerRunsUnprivileged(t *testing.T) {
	r := runAttacker(t, "whoami")
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if want := "uid " + u.Uid + " "; !strings.HasPrefix(r.Detail, want) {
		t.Fatalf("the attacker ran as %q, want %q…", r.Detail, want)
	}
	if os.Getuid() == 0 && u.Uid == "0" {
		t.Fatal("nobody is root here")
	}
}
