package graphql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// progressDeployer is a Deployer that knows the running deployments'
// progress, as the real one learns it from their workflows, and counts
// the times it was asked.
type progressDeployer struct {
	*sqlitetest.Deployer
	mu    sync.Mutex
	p     slipway.Progress
	asked int
}

// awaitAsked waits until the Deployer was asked n more times than when
// called: that many polls of a subscription.
func (d *progressDeployer) awaitAsked(t *testing.T, n int) {
	t.Helper()
	d.mu.Lock()
	want := d.asked + n
	d.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		asked := d.asked
		d.mu.Unlock()
		if asked >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the progress was asked %d times in 10s, want %d", asked, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *progressDeployer) set(p slipway.Progress) {
	d.mu.Lock()
	d.p = p
	d.mu.Unlock()
}

func (d *progressDeployer) Progress(_ context.Context, dep *slipway.Deployment) (*slipway.Progress, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked++
	p := d.p
	return &p, nil
}

// A running deployment's progress is the Deployer's; deploymentUpdated
// sends each change of step, and the record's counts once it ended.
func TestDeploymentProgress(t *testing.T) {
	var pd *progressDeployer
	e := newEnvWith(t, func(c *graphqlConfig) {
		pd = &progressDeployer{Deployer: c.Deployer.(*sqlitetest.Deployer)}
		c.Deployer = pd
		c.PollInterval = 10 * time.Millisecond
	})
	seed(t, e.store)
	ctx := t.Context()
	if err := e.store.MarkBuilding(ctx, "d-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	pd.set(slipway.Progress{Phase: slipway.PhaseBuild, Step: 2, StepsTotal: 3, Instruction: "RUN make", CachedSteps: 1})
	r := e.do(t, `{ deployment(id: "d-2") { progress { phase step stepsTotal stage instruction cachedSteps } } }`, nil)
	if got := string(r.Data); !strings.Contains(got, `"progress":{"phase":"build","step":2,"stepsTotal":3,"stage":null,"instruction":"RUN make","cachedSteps":1}`) {
		t.Errorf("progress of a running deployment = %s %v", got, r.Errors)
	}

	w, err := e.dialWS(t, nil, map[string]any{"Authorization": "Bearer " + e.token})
	if err != nil {
		t.Fatal(err)
	}
	w.subscribe("state", `subscription { deploymentUpdated(id: "d-2") { status progress { phase step stepsTotal cachedSteps } } }`, nil)
	// Each state is polled several times: it is sent once.
	w.await("state", `"step":2`, 10*time.Second)
	pd.awaitAsked(t, 5)
	pd.set(slipway.Progress{Phase: slipway.PhaseBuild, Step: 3, StepsTotal: 3, CachedSteps: 1})
	w.await("state", `"step":3`, 10*time.Second)
	pd.awaitAsked(t, 5)
	if err := e.store.FinishDeployment(ctx, "d-2", slipway.DeploymentResult{Status: slipway.StatusSucceeded,
		Steps: []slipway.BuildStep{{N: 1, Cached: true}, {N: 2, Cached: true}, {N: 3}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	nexts, errp := w.until("state", 10*time.Second)
	var got []string
	for _, p := range nexts {
		var d struct {
			Data struct {
				DeploymentUpdated struct {
					Status   string
					Progress slipway.Progress
				}
			}
		}
		json.Unmarshal(p, &d)
		u := d.Data.DeploymentUpdated
		got = append(got, fmt.Sprintf("%s %s %d/%d c%d", u.Status, u.Progress.Phase, u.Progress.Step, u.Progress.StepsTotal, u.Progress.CachedSteps))
	}
	want := "BUILDING build 2/3 c1,BUILDING build 3/3 c1,SUCCEEDED done 3/3 c2"
	if errp != "" || strings.Join(got, ",") != want {
		t.Errorf("deploymentUpdated = %v (error %s), want %s", got, errp, want)
	}
}
