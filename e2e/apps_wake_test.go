package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// 50 requests arriving together at an app that never ran, then at the
// same app stopped, are all held and answered 200 by one wake: one start
// of the app, one "app woke" line, a Server-Timing on every answer.
func TestAppsWake50(t *testing.T) {
	s, addr, base := startAppsServer(t, "--app-idle-timeout", "1s", "--app-stop-after", "3s")
	// The app binds its port a second after it starts: all 50 requests
	// arrive while its wake is in flight.
	dockerfile := "FROM " + base + "\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"sh\", \"-c\", \"sleep 1; exec httpd -f -p 8000 -h /app\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": "fifty\n"})
	s.addProject(t, "burst", dir)
	d := s.deployWait(t, "burst", sha)
	// The release phase started the app: remove its container, so that
	// the first burst meets an app whose container is gone (made anew),
	// once the server noticed it no longer serves (its idle timer).
	if out, err := appsPodman(s.DataDir, "rm", "--force", "--time", "0", "slipway-app-burst-"+d.ID).CombinedOutput(); err != nil {
		t.Fatalf("remove the released app's container: %v: %s", err, out)
	}
	time.Sleep(3 * time.Second)

	checkBurst := func(when, phase string, wakes int) {
		t.Helper()
		res := burst(addr, "burst.localhost", 50)
		waited := 0
		for i, r := range res {
			if r.err != nil || r.code != http.StatusOK || r.body != "fifty\n" {
				t.Errorf("%s: request %d: %d %q %v, want 200 \"fifty\"", when, i, r.code, r.body, r.err)
			}
			if strings.HasPrefix(r.timing, "wake;dur=") && strings.Contains(r.timing, phase+";dur=") {
				waited++
			}
		}
		// All 50 were sent before the app could answer: each was held on
		// the wake.
		if waited != len(res) {
			t.Errorf("%s: %d of %d answers carry a Server-Timing with wake and %s, want all (one: %q)", when, waited, len(res), phase, res[0].timing)
		}
		if n := countLines(s, `msg="app woke" project=burst `); n != wakes {
			t.Errorf("%s: %d \"app woke\" lines in all, want %d\nserver:\n%s", when, n, wakes, s.out)
		}
		t.Logf("%s: Server-Timing: %s", when, res[0].timing)
	}

	// A first start says what it spent its time on.
	checkBurst("never started", "create", 1)
	if n := countLines(s, `msg="app started" project=burst `); n != 2 {
		t.Errorf("the app was started %d times by its release and 50 requests, want twice\nserver:\n%s", n, s.out)
	}
	waitAsleep(t, s, "burst", "stopped", 1)
	if st := appState(t, s, "burst", d.ID); st != "initialized" && st != "created" {
		t.Fatalf("the stopped app's container is %q, want initialized or created (primed)", st)
	}
	checkBurst("stopped", "start", 2)
	if n := countLines(s, `msg="apps: woke" .*app=slipway-app-burst-\S+ from=stopped`); n != 1 {
		t.Errorf("the stopped app was woken %d times by 50 requests, want once\nserver:\n%s", n, s.out)
	}
	if n := countLines(s, `msg="app started" project=burst `); n != 2 {
		t.Errorf("the stopped app's container was made anew (%d starts in all), want it woken", n)
	}
}
