package graphql_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// deleteProject removes the machine, then the project with its
// deployments; it refuses while a deployment runs, and for unknown names.
func TestDeleteProject(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}).ok(t, &addProjectData{})
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "api", "repo": "file:///a"}}).ok(t, &addProjectData{})
	var ids []string
	for i, p := range []string{"web", "web", "api"} {
		d, _, err := e.store.CreateDeployment(ctx, &slipway.Deployment{ID: fmt.Sprintf("d-%d", i), Project: p, Status: slipway.StatusQueued, Commit: strings.Repeat("a", 40)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	if err := e.store.FinishDeployment(ctx, ids[0], slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	const del = `mutation($n: String!) { deleteProject(name: $n) { name deploymentsRemoved } }`

	code, msg := e.do(t, del, map[string]any{"n": "web"}).code(t)
	if code != "conflict" || !strings.Contains(msg, ids[1]) || !strings.Contains(msg, "slipway cancel") {
		t.Errorf("deleteProject with a queued deployment = %s %q; want conflict naming %s", code, msg, ids[1])
	}
	if len(e.machines.destroyed) != 0 {
		t.Errorf("a refused deleteProject destroyed machines %q", e.machines.destroyed)
	}
	if err := e.store.FinishDeployment(ctx, ids[1], slipway.DeploymentResult{Status: slipway.StatusCancelled}, time.Now()); err != nil {
		t.Fatal(err)
	}

	// A machine that cannot be removed leaves the project as it was.
	e.machines.destroyErr = errors.New("volume busy")
	if code, _ := e.do(t, del, map[string]any{"n": "web"}).code(t); code == "" {
		t.Errorf("deleteProject with a failing machine removal succeeded")
	}
	if _, err := e.store.Project(ctx, "web"); err != nil {
		t.Errorf("the project went although its machine stayed: %v", err)
	}
	e.machines.destroyErr = nil

	var got struct {
		DeleteProject struct {
			Name               string
			DeploymentsRemoved int
		}
	}
	e.do(t, del, map[string]any{"n": "web"}).ok(t, &got)
	if got.DeleteProject.Name != "web" || got.DeleteProject.DeploymentsRemoved != 2 {
		t.Errorf("deleteProject = %+v, want web with 2 deployments", got.DeleteProject)
	}
	if !slices.Equal(e.machines.destroyed, []string{"web"}) {
		t.Errorf("machines destroyed: %q, want web", e.machines.destroyed)
	}
	if r := e.do(t, `{ project(name: "web") { name } }`, nil); !strings.Contains(r.raw, `{"project":null}`) {
		t.Errorf("project after deleteProject = %s, want null", r.raw)
	}
	if ds, _ := e.store.Deployments(ctx, "api", 0); len(ds) != 1 {
		t.Errorf("the other project's deployments: %d, want 1", len(ds))
	}
	if code, msg := e.do(t, del, map[string]any{"n": "web"}).code(t); code != "not_found" || !strings.Contains(msg, `"web" not found`) {
		t.Errorf("deleteProject of a deleted project = %s %q", code, msg)
	}
	// The name is free again.
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}).ok(t, &addProjectData{})
}
