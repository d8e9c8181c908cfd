package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/events"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natsserver"
)

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	srv := logtest.StartServer(t, natsserver.Config{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// expect waits for a value on changed.
func expect(t *testing.T, changed <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatalf("no announcement after %s", what)
	}
}

// NotifyingStore announces every change of a deployment's state, and
// Watch hears it.
func TestWatchDeployment(t *testing.T) {
	nc := connect(t)
	db, _ := logtest.SQLiteDeployment(t)
	store := events.NotifyingStore(db, nc, nil)
	ctx := t.Context()
	d, _, err := store.CreateDeployment(ctx, &slipway.Deployment{Project: logtest.Project, Status: slipway.StatusQueued})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	changed, err := events.Watch(wctx, nc, logtest.Project, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.MarkBuilding(ctx, d.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	expect(t, changed, "MarkBuilding")
	if err := store.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	expect(t, changed, "FinishDeployment")
	cancel()
	for range changed {
	}
	if _, err := events.Watch(ctx, nc, "a.b", d.ID); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("Watch of a bad subject = %v, want invalid", err)
	}
}

// What the agent announces (its progress) reaches a watcher, on the
// subject and in the shape earlier versions used.
func TestAnnounce(t *testing.T) {
	nc := connect(t)
	if got, want := events.Subject("web", "d1"), "slipway.events.web.d1"; got != want {
		t.Errorf("Subject(%q, %q) = %q, want %q", "web", "d1", got, want)
	}
	sub, err := nc.SubscribeSync("slipway.events.web.d1")
	if err != nil {
		t.Fatal(err)
	}
	changed, err := events.Watch(t.Context(), nc, "web", "d1")
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Announce(nc, "web", "d1", slipway.StatusBuilding); err != nil {
		t.Fatal(err)
	}
	expect(t, changed, "Announce")
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e events.Event
	if err := json.Unmarshal(m.Data, &e); err != nil || e != (events.Event{Deployment: "d1", Status: slipway.StatusBuilding}) {
		t.Errorf("announcement %s decodes to %+v, %v", m.Data, e, err)
	}
	if err := events.Announce(nc, "web", "d 1", slipway.StatusBuilding); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("Announce of a bad subject = %v, want invalid", err)
	}
}
