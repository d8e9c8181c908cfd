package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func TestPreviews(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "web", "file:///r")
	mustCreateProject(t, db, "api", "file:///r2")
	sha1, sha2 := strings.Repeat("a", 40), strings.Repeat("b", 40)

	p, err := db.PutPreview(ctx, &slipway.Preview{Project: "web", Number: 7, HeadBranch: "feature", HeadSHA: sha1, Deployment: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != slipway.PreviewOpen || p.HeadRef != "refs/pull/7/head" || p.LastRequestAt != nil || p.CreatedAt.IsZero() {
		t.Fatalf("PutPreview = %+v, want open, refs/pull/7/head, no request yet", p)
	}
	created := p.CreatedAt
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := db.TouchPreview(ctx, "web", 7, at); err != nil {
		t.Fatal(err)
	}
	// An earlier time does not move it back.
	if err := db.TouchPreview(ctx, "web", 7, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPreviewState(ctx, "web", 7, slipway.PreviewClosed); err != nil {
		t.Fatal(err)
	}
	// A new head reopens it and keeps its creation and last request.
	p, err = db.PutPreview(ctx, &slipway.Preview{Project: "web", Number: 7, HeadSHA: sha2, Deployment: "d2"})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != slipway.PreviewOpen || p.HeadSHA != sha2 || p.Deployment != "d2" || !p.CreatedAt.Equal(created) ||
		p.LastRequestAt == nil || !p.LastRequestAt.Equal(at) {
		t.Errorf("after a new head: %+v, want open at %s (d2), created %v, last request %v", p, sha2, created, at)
	}
	if _, err := db.PutPreview(ctx, &slipway.Preview{Project: "api", Number: 1, HeadSHA: sha1}); err != nil {
		t.Fatal(err)
	}

	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all, err := db.Previews(ctx, "")
	if err != nil || len(all) != 2 || all[0].Project != "api" || all[1].Number != 7 {
		t.Fatalf("Previews(all) after reopening = %v, %v; want api#1 and web#7", all, err)
	}
	web, err := db.Previews(ctx, "web")
	if err != nil || len(web) != 1 || web[0].LastRequestAt == nil || !web[0].LastRequestAt.Equal(at) {
		t.Fatalf("Previews(web) = %v, %v; want #7 last requested at %v", web, err, at)
	}
	if err := db.DeletePreview(ctx, "web", 7); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Preview(ctx, "web", 7); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("deleted preview: %v, want not_found", err)
	}
	if err := db.SetPreviewState(ctx, "web", 7, slipway.PreviewClosed); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("SetPreviewState of a deleted preview: %v, want not_found", err)
	}
	if _, err := db.PutPreview(ctx, &slipway.Preview{Project: "nope", Number: 1, HeadSHA: sha1}); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("unknown project: %v, want not_found", err)
	}
	if _, err := db.PutPreview(ctx, &slipway.Preview{Project: "web", Number: 2, HeadSHA: "main"}); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("head that is no SHA: %v, want invalid", err)
	}
	// A deployment keeps its pull request number.
	d := &slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(3), Commit: sha1, Preview: 3}
	if _, _, err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Deployment(ctx, d.ID); err != nil || got.Preview != 3 {
		t.Errorf("deployment's preview = %+v, %v; want 3", got, err)
	}
	if err := db.DeleteProject(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := db.Previews(ctx, "api"); len(ps) != 0 {
		t.Errorf("a deleted project's previews: %v, want none", ps)
	}
}

func TestPreviewOfRef(t *testing.T) {
	for ref, want := range map[string]int{"refs/pull/12/head": 12, "refs/pull/012/head": 0, "refs/pull/x/head": 0, "refs/heads/main": 0, "refs/pull/3/merge": 0} {
		if got := slipway.PreviewOfRef(ref); got != want {
			t.Errorf("PreviewOfRef(%q) = %d, want %d", ref, got, want)
		}
	}
}
