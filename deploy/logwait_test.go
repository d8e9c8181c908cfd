package deploy

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite"
)

// AwaitLog against a real NATS, archiver and store: while nobody archives,
// the log is reported incomplete after the (short) bound; once the
// archiver runs, complete; a last line the agent reported but NATS never
// got (left in the agent's spool) keeps it incomplete.
func TestAwaitLog(t *testing.T) {
	ctx := t.Context()
	creds, err := credential.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	tok, err := creds.Server(credential.NATS)
	if err != nil {
		t.Fatal(err)
	}
	natsURL := "nats://" + tok + "@" + strings.TrimPrefix(ns.URL(), "nats://")
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
	d := &slipway.Deployment{Project: "app", Ref: "main", Commit: strings.Repeat("a", 40)}
	if _, _, err := store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	pub, err := publish.New(ctx, publish.Config{URL: natsURL, Project: "app", Deployment: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		pub.Line("stdout", "line "+string(rune('1'+i)))
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pub.Close(cctx); err != nil {
		t.Fatal(err)
	}

	arch, err := archive.Start(ctx, archive.Config{URL: natsURL, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer arch.Stop()
	acts := &ControlActivities{Store: store, Logs: arch, LogWait: time.Minute}
	got, err := acts.AwaitLog(ctx, LogWaitInput{DeploymentID: d.ID, Project: "app", AgentLastLine: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Complete || got.Lines != 5 {
		t.Errorf("AwaitLog = %+v, want complete with 5 lines (the stream has more than the agent reported)", got)
	}
	lines, err := store.LogLines(ctx, d.ID, 1, 0)
	if err != nil || len(lines) != 5 {
		t.Fatalf("store has %d lines (%v) after AwaitLog said complete, want 5", len(lines), err)
	}

	// The agent wrote 8 lines, NATS has 5 (the rest stayed in its spool):
	// the bounded wait gives up and says so.
	acts.LogWait = 500 * time.Millisecond
	got, err = acts.AwaitLog(ctx, LogWaitInput{DeploymentID: d.ID, Project: "app", AgentLastLine: 8, Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got.Complete || got.Lines != 8 || !strings.Contains(got.Missing, "lines 1..8") {
		t.Errorf("AwaitLog = %+v, want incomplete, 8 lines, saying which are missing", got)
	}

	// A deployment without lines (its agent never wrote one) is complete.
	got, err = acts.AwaitLog(ctx, LogWaitInput{DeploymentID: "d-none", Project: "app"})
	if err != nil || !got.Complete || got.Lines != 0 {
		t.Errorf("AwaitLog of a deployment without lines = %+v, %v; want complete, 0 lines", got, err)
	}
}
