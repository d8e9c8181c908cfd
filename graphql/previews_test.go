package graphql_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// TestPreviews: a project's previews are listed with their URL and
// deployment, and a deployment says which pull request it previews.
func TestPreviews(t *testing.T) {
	e := newEnvWith(t, func(c *graphqlConfig) {
		c.Previews = c.Store.(slipway.PreviewStore)
		c.PreviewURL = func(project string, n int) string {
			return "http://pr-" + strconv.Itoa(n) + "." + project + ".localhost:8081"
		}
	})
	ctx := t.Context()
	sqlitetest.AddProject(t, e.store, slipway.Project{Name: "web", Repo: "file:///r", Branch: "main"})
	sha := strings.Repeat("c", 40)
	d := sqlitetest.AddDeployment(t, e.store, slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(7), Commit: sha, Status: slipway.StatusSucceeded, Preview: 7})
	sqlitetest.AddDeployment(t, e.store, slipway.Deployment{Project: "web", Ref: "refs/heads/main", Commit: strings.Repeat("d", 40), Status: slipway.StatusSucceeded})
	if _, err := e.store.PutPreview(ctx, &slipway.Preview{Project: "web", Number: 7, HeadBranch: "topic", HeadSHA: sha, Deployment: d.ID}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Project struct {
			Previews []struct {
				Number                              int
				State, HeadRef, HeadBranch, HeadSha string
				URL                                 *string
				Deployment                          *struct {
					ID      string
					Status  string
					Preview *int
				}
				LastRequestAt *string
			}
			Deployments []struct{ Preview *int }
		}
	}
	e.do(t, `query { project(name: "web") { previews { number state headRef headBranch headSha url deployment { id status preview } lastRequestAt }
		deployments { preview } } }`, nil).ok(t, &got)
	ps := got.Project.Previews
	if len(ps) != 1 {
		t.Fatalf("previews = %+v, want one", ps)
	}
	p := ps[0]
	if p.Number != 7 || p.State != "open" || p.HeadRef != "refs/pull/7/head" || p.HeadBranch != "topic" || p.HeadSha != sha ||
		p.URL == nil || *p.URL != "http://pr-7.web.localhost:8081" || p.LastRequestAt != nil {
		t.Errorf("preview = %+v", p)
	}
	if p.Deployment == nil || p.Deployment.ID != d.ID || p.Deployment.Status != "SUCCEEDED" || p.Deployment.Preview == nil || *p.Deployment.Preview != 7 {
		t.Errorf("preview's deployment = %+v, want %s, succeeded, preview 7", p.Deployment, d.ID)
	}
	var previews []string
	for _, d := range got.Project.Deployments {
		if d.Preview == nil {
			previews = append(previews, "null")
		} else {
			previews = append(previews, strconv.Itoa(*d.Preview))
		}
	}
	if strings.Join(previews, ",") != "null,7" {
		t.Errorf("deployments' preview = %v, want null (production, newest) then 7", previews)
	}
}
