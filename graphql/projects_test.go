package graphql_test

import (
	"testing"
	"time"

	"github.com/slipway-ci/slipway/deploy"
)

// addProject is a thin caller of the project service: the project it
// adds is the service's, clock and defaults included.
func TestAddProjectThroughTheService(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	e := newEnvWith(t, func(c *graphqlConfig) {
		c.Projects = deploy.NewProjects(deploy.ProjectsConfig{Store: c.Store, Now: func() time.Time { return now }})
	})
	var got addProjectData
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}).ok(t, &got)
	p := got.AddProject.Project
	if !p.CreatedAt.Equal(now) || p.Branch != deploy.DefaultBranch || p.Dockerfile != deploy.DefaultDockerfile || p.Context != deploy.DefaultContext {
		t.Errorf("addProject = %+v, want the service's defaults and clock (%v)", p, now)
	}
	if len(got.AddProject.WebhookSecret) != 64 {
		t.Errorf("webhook secret %q, want the service's 64 hex digits", got.AddProject.WebhookSecret)
	}
}
