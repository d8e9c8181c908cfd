package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

func TestPreviewsCmd(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	if code, stdout, _ := ts.slipwayCmd(t, "previews", "web"); code != 0 || !strings.Contains(stdout, "No previews of web") {
		t.Errorf("previews of a project without any = %d %q, want a note", code, stdout)
	}
	sha := strings.Repeat("c", 40)
	d := sqlitetest.AddDeployment(t, ts.store, slipway.Deployment{ID: "d-pr", Project: "web", Ref: slipway.PreviewRef(7), Commit: sha,
		Trigger: slipway.TriggerWebhook, Status: slipway.StatusSucceeded, Image: "r/web:" + sha, Digest: digest, Preview: 7})
	if _, err := ts.store.PutPreview(t.Context(), &slipway.Preview{Project: "web", Number: 7, HeadBranch: "topic", HeadSHA: sha, Deployment: d.ID}); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.TouchPreview(t.Context(), "web", 7, time.Now().Add(-3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ts.slipwayCmd(t, "previews", "web")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 2 ||
		!regexp.MustCompile(`^PR\s+STATE\s+HEAD\s+BRANCH\s+DEPLOYMENT\s+STATUS\s+URL\s+LAST REQUEST$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^pr-7\s+open\s+cccccccccccc\s+topic\s+d-pr\s+succeeded\s+http://pr-7\.web\.localhost:8081\s+3m ago$`).MatchString(lines[1]) {
		t.Errorf("previews web = %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = ts.slipwayCmd(t, "previews", "web", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || len(got) != 1 {
		t.Fatalf("previews --json = %d %v\n%s", code, err, stdout)
	}
	if got[0]["number"] != 7.0 || got[0]["headSha"] != sha || got[0]["status"] != "succeeded" || got[0]["deployment"] != "d-pr" ||
		got[0]["url"] != "http://pr-7.web.localhost:8081" || got[0]["lastRequestAt"] == nil || got[0]["state"] != "open" {
		t.Errorf("previews --json = %v", got[0])
	}
	if _, stdout, _ := ts.slipwayCmd(t, "deployments", "web"); !regexp.MustCompile(`(?m)^d-pr\s+succeeded\s+cccccccccccc \(pr-7\)`).MatchString(stdout) {
		t.Errorf("deployments web does not mark the preview's deployment:\n%s", stdout)
	}
	if _, stdout, _ := ts.slipwayCmd(t, "deployments", "web", "--json"); !strings.Contains(stdout, `"preview": 7`) {
		t.Errorf("deployments --json lacks the preview:\n%s", stdout)
	}
	if code, _, stderr := ts.slipwayCmd(t, "previews", "nope"); code == 0 || !strings.Contains(stderr, `project "nope" not found`) {
		t.Errorf("previews of an unknown project = %d %q, want an error", code, stderr)
	}
}
