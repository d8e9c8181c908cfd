package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// A deployment's progress comes from its workflow (a Temporal query) while
// it builds: the API and `slipway deployment` show the phase and the
// Dockerfile step the builder is on, with the cached steps so far, and a
// deploymentUpdated subscriber is sent each new step as it starts.
func TestProgressMidBuild(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--no-reuse")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	// The last step sleeps for as many seconds as wait.txt says: a short
	// first build warms the cache, the second has two cached steps, then
	// sits in its last step while the test looks.
	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY f.txt /f.txt\nRUN echo first-run\nCOPY wait.txt /wait.txt\n" +
			"RUN echo progress-wait''ing && sleep $(cat /wait.txt) && echo progress-do''ne\n",
		"f.txt":    "x\n",
		"wait.txt": "0\n",
	})
	s.addProject(t, "steps", dir)
	first := s.deployWait(t, "steps", sha)
	if first.Status != "succeeded" {
		t.Fatalf("first build: %+v", first)
	}

	sha2 := testenv.Commit(t, dir, map[string]string{"wait.txt": "25\n"})
	out, code := s.cli(t, "deploy", "steps", "--commit", sha2)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, out)
	}
	id := strings.TrimSpace(out)

	// A subscriber from the start.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var events []slipway.Progress
	followed := make(chan error, 1)
	go func() {
		followed <- s.api().FollowDeployment(ctx, id, func(d *slipway.Deployment) error {
			if d.Progress != nil {
				mu.Lock()
				events = append(events, *d.Progress)
				mu.Unlock()
			}
			return nil
		})
	}()

	// Mid-build: phase build, on step 5/5, two steps cached so far.
	want := slipway.Progress{Phase: slipway.PhaseBuild, Step: 5, StepsTotal: 5, CachedSteps: 2,
		Instruction: "RUN echo progress-wait''ing && sleep $(cat /wait.txt) && echo progress-do''ne"}
	deadline := time.Now().Add(3 * time.Minute)
	var seen []string
	for {
		d, err := s.api().Deployment(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.Terminal() {
			t.Fatalf("the deployment ended (%s) before its progress showed %+v; seen: %v", d.Status, want, seen)
		}
		if d.Progress != nil {
			if g := fmt.Sprintf("%+v", *d.Progress); len(seen) == 0 || seen[len(seen)-1] != g {
				seen = append(seen, g)
			}
			if *d.Progress == want {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress never showed %+v; seen: %v\nagent:\n%s", want, seen, s.agentLog("steps"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, code = s.cli(t, "deployment", id)
	if code != 0 || !strings.Contains(out, "progress:") || !strings.Contains(out, "build, step 5/5 (2 cached so far): RUN echo progress-wait''ing") {
		t.Errorf("slipway deployment mid-build = exit %d:\n%s", code, out)
	}
	// The sleep step is still running: its output begins, but does not
	// end. (The quotes keep the step's header, also in the log, from
	// matching.)
	s.waitLog(t, "steps", id, "progress-waiting")
	if logs, _ := s.cli(t, "logs", id); strings.Contains(logs, "progress-done") {
		t.Errorf("the sleep step ended before the test looked (a very slow machine?):\n%s", logs)
	}

	// The subscriber heard of step 5 while the build ran, without asking.
	deadline = time.Now().Add(time.Minute)
	for {
		mu.Lock()
		got := false
		for _, e := range events {
			got = got || e == want
		}
		n := len(events)
		mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deploymentUpdated subscriber got %d events, none with %+v", n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	d := s.waitFinished(t, "steps", id, 3*time.Minute)
	if d.Status != "succeeded" {
		t.Fatalf("second build: %+v", d)
	}
	if err := <-followed; err != nil {
		t.Fatalf("deploymentUpdated: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Phases only move forward, and the subscription ends in done with the
	// build's step counts.
	order := map[string]int{"queue": 0, "wake": 1, "fetch": 2, "build": 3, "push": 4, "release": 5, "done": 6}
	for i := 1; i < len(events); i++ {
		if order[events[i].Phase] < order[events[i-1].Phase] {
			t.Errorf("phase went back from %s to %s: %+v", events[i-1].Phase, events[i].Phase, events)
		}
	}
	last := events[len(events)-1]
	if last.Phase != slipway.PhaseDone || last.Step != 5 || last.StepsTotal != 5 || last.CachedSteps != 2 {
		t.Errorf("last event's progress = %+v, want done with 5 steps, 2 cached", last)
	}
	dd, err := s.api().Deployment(t.Context(), id)
	if err != nil || dd.Progress == nil || *dd.Progress != last {
		t.Errorf("finished deployment's progress = %+v, %v; want %+v", dd.Progress, err, last)
	}
}
