package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
)

func TestProjectLogRetention(t *testing.T) {
	ts := newServer(t)
	db := ts.store
	ctx := t.Context()
	code, stdout, stderr := ts.slipwayCmd(t, "project", "add", "web", "--repo", "file:///r", "--log-retention", "30d", "--log-retention-size", "500MB")
	if code != 0 || !strings.Contains(stdout, "log retention:   30d, 500 MB") {
		t.Fatalf("project add with retention = exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	want := slipway.LogRetention{MaxAge: 30 * 24 * time.Hour, MaxBytes: 500e6}
	if p, err := db.Project(ctx, "web"); err != nil || p.LogRetention != want {
		t.Errorf("stored project = %+v, %v; want retention %+v", p, err, want)
	}
	code, stdout, _ = ts.slipwayCmd(t, "projects", "--json")
	if code != 0 || !strings.Contains(stdout, `"maxAgeSeconds": 2592000`) || !strings.Contains(stdout, `"maxBytes": 500000000`) {
		t.Errorf("projects --json = exit %d:\n%s", code, stdout)
	}

	// Change one limit, keep the other.
	code, stdout, stderr = ts.slipwayCmd(t, "project", "set", "web", "--log-retention", "off")
	if code != 0 || stdout != "Project web: log retention 500 MB.\n" {
		t.Errorf("project set --log-retention off = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "set", "web", "--log-retention", "2w", "--log-retention-size", "off")
	if code != 0 || stdout != "Project web: log retention 2w.\n" {
		t.Errorf("project set = exit %d, stdout %q", code, stdout)
	}
	if p, _ := db.Project(ctx, "web"); p.LogRetention != (slipway.LogRetention{MaxAge: 14 * 24 * time.Hour}) {
		t.Errorf("stored retention = %+v", p.LogRetention)
	}

	// Bad values are usage errors that say what to write; nothing changes.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"project", "set", "web", "--log-retention", "30"}, `error: --log-retention: invalid log retention age "30": unknown format; use a number of days, weeks or hours such as 30d, 2w or 12h, or "off" to keep logs forever`},
		{[]string{"project", "set", "web", "--log-retention", "-1d"}, `invalid log retention age "-1d": it is negative`},
		{[]string{"project", "set", "web", "--log-retention", "5m"}, `shorter than an hour`},
		{[]string{"project", "set", "web", "--log-retention-size", "lots"}, `error: --log-retention-size: invalid log retention size "lots": unknown format; use a size such as 500MB, 2GB or 1GiB, or "off" for no size limit`},
		{[]string{"project", "set", "web", "--log-retention-size", "10kB"}, `smaller than 1 MiB`},
		{[]string{"project", "set", "web"}, "nothing to change: give --log-retention, --log-retention-size, --log-max-lines, --log-max-bytes, --build-arg, --unset-build-arg, --memory, --cpus, --health-path, --idle-timeout, --stop-after or --port"},
		{[]string{"project", "add", "api", "--repo", "file:///r", "--log-retention", "thirty days"}, `invalid log retention age "thirty days"`},
	} {
		code, stdout, stderr := ts.slipwayCmd(t, tt.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("slipway %s = exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	if _, err := db.Project(ctx, "api"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("a project add with a bad retention stored the project: %v", err)
	}
	code, _, stderr = ts.slipwayCmd(t, "project", "set", "nope", "--log-retention", "1d")
	if code != 1 || stderr != "error: project \"nope\" not found (not_found)\n" {
		t.Errorf("project set of an unknown project = exit %d, stderr %q", code, stderr)
	}
	// The server checks too, for clients other than the CLI.
	c := client.New(ts.url, nil).WithToken(ts.token)
	bad := "1 fortnight"
	if _, err := c.SetLogRetention(ctx, "web", &bad, nil); slipway.ErrorCode(err) != slipway.EINVALID || !strings.Contains(err.Error(), "30d") {
		t.Errorf("setLogRetention(%q) = %v, want an invalid error saying how to write it", bad, err)
	}
	if _, err := c.AddProject(ctx, client.AddProjectInput{Name: "api", Repo: "file:///r", LogRetentionSize: "-5GB"}); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("addProject with a negative size = %v, want invalid", err)
	}
	if p, _ := db.Project(ctx, "web"); p.LogRetention != (slipway.LogRetention{MaxAge: 14 * 24 * time.Hour}) {
		t.Errorf("rejected changes changed the retention: %+v", p.LogRetention)
	}
}

// `slipway logs` of a pruned log says so instead of printing nothing.
func TestLogsPruned(t *testing.T) {
	ts := newServer(t)
	db := ts.store
	ctx := t.Context()
	if code, _, stderr := ts.slipwayCmd(t, "project", "add", "web", "--repo", "file:///r", "--log-retention", "1d"); code != 0 {
		t.Fatal(stderr)
	}
	long := time.Now().Add(-72 * time.Hour)
	old, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: "web", CreatedAt: long})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AppendLogLines(ctx, []slipway.LogLine{{Deployment: old.ID, N: 1, Time: long, Text: "STEP 1/1: FROM base"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeployment(ctx, old.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, long); err != nil {
		t.Fatal(err)
	}
	// A deployment that printed nothing is not pruned: empty, exit 0.
	quiet, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := ts.slipwayCmd(t, "logs", old.ID); code != 0 || stdout != "STEP 1/1: FROM base\n" {
		t.Fatalf("logs before pruning = exit %d, %q", code, stdout)
	}
	if res, err := db.PruneLogs(ctx, time.Now()); err != nil || res.Deployments != 1 {
		t.Fatalf("PruneLogs = %+v, %v", res, err)
	}

	wantErr := "error: the log of deployment " + old.ID + " was deleted by project web's log retention (the deployment succeeded; 'slipway deployment " + old.ID + "' shows its record)\n"
	for _, args := range [][]string{{"logs", old.ID}, {"logs", old.ID, "--search", "STEP"}, {"logs", "-f", old.ID}} {
		code, stdout, stderr := ts.slipwayCmd(t, args...)
		if code != 1 || stdout != "" || stderr != wantErr {
			t.Errorf("slipway %s = exit %d, stdout %q, stderr %q; want 1 and %q", strings.Join(args, " "), code, stdout, stderr, wantErr)
		}
	}
	if code, stdout, stderr := ts.slipwayCmd(t, "logs", quiet.ID); code != 0 || stdout != "" {
		t.Errorf("logs of a deployment without lines = exit %d, %q, %q; want 0 and nothing", code, stdout, stderr)
	}
	code, stdout, _ := ts.slipwayCmd(t, "deployment", old.ID)
	if code != 0 || !strings.Contains(stdout, "log:") || !strings.Contains(stdout, "deleted by the project's log retention") || !strings.Contains(stdout, "succeeded") {
		t.Errorf("deployment of a pruned log = exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = ts.slipwayCmd(t, "deployment", old.ID, "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || got["logPruned"] != true {
		t.Errorf("deployment --json = exit %d, %v:\n%s", code, err, stdout)
	}
}
