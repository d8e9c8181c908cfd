package sqlite

import (
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func TestMachines(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "web", "https://github.com/acme/web")
	mustCreateProject(t, db, "api", "https://github.com/acme/api")

	if ms, err := db.Machines(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("Machines of a new store = %+v, %v; want none", ms, err)
	}
	_, err := db.Machine(ctx, "web")
	wantCode(t, "Machine before any upsert", err, slipway.ENOTFOUND, `no machine for project "web"`)

	woke := time.Date(2026, 2, 3, 4, 5, 6, 789, time.FixedZone("CET", 3600))
	web := &slipway.Machine{
		Project: "web", Provider: "process", State: slipway.MachineStarting, PID: 4242,
		VolumeDir: "/srv/slipway/volumes/web", LastWokeAt: &woke,
	}
	before := time.Now()
	if err := db.UpsertMachine(ctx, web); err != nil {
		t.Fatalf("UpsertMachine(web): %v", err)
	}
	if web.UpdatedAt.Before(before.Add(-time.Second)) || web.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpsertMachine set UpdatedAt = %v, want about now in UTC", web.UpdatedAt)
	}
	got, err := db.Machine(ctx, "web")
	if err != nil {
		t.Fatalf("Machine(web): %v", err)
	}
	wokeUTC := woke.UTC()
	want := *web
	want.LastWokeAt = &wokeUTC
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("Machine(web) = %+v\nwant %+v", got, &want)
	}

	// A second upsert replaces every field.
	slept := woke.Add(time.Minute).UTC()
	updated := slept.Add(time.Millisecond)
	web2 := &slipway.Machine{
		Project: "web", Provider: "process", Isolation: "rootless", User: "slipway-web", State: slipway.MachineFailed,
		VolumeDir: "/srv/slipway/volumes/web", VolumeBytes: 1 << 30, LastWokeAt: &wokeUTC, LastWakeMs: 87, LastSleptAt: &slept,
		Error: "agent exited with status 1", UpdatedAt: updated,
	}
	if err := db.UpsertMachine(ctx, web2); err != nil {
		t.Fatalf("UpsertMachine(web) again: %v", err)
	}
	if got, err := db.Machine(ctx, "web"); err != nil || !reflect.DeepEqual(got, web2) {
		t.Errorf("Machine(web) after the second upsert = %+v, %v\nwant %+v", got, err, web2)
	}

	api := &slipway.Machine{Project: "api", Provider: "process", State: slipway.MachineAsleep}
	if err := db.UpsertMachine(ctx, api); err != nil {
		t.Fatalf("UpsertMachine(api): %v", err)
	}
	ms, err := db.Machines(ctx)
	if err != nil {
		t.Fatalf("Machines: %v", err)
	}
	if len(ms) != 2 || ms[0].Project != "api" || ms[1].Project != "web" || ms[1].State != slipway.MachineFailed || ms[0].LastWokeAt != nil {
		t.Errorf("Machines = %+v, want api (no wake yet), then web (failed)", ms)
	}

	wantCode(t, "UpsertMachine unknown project", db.UpsertMachine(ctx, &slipway.Machine{Project: "nope", State: slipway.MachineAsleep}),
		slipway.ENOTFOUND, `project "nope" not found`)
	wantCode(t, "UpsertMachine bad state", db.UpsertMachine(ctx, &slipway.Machine{Project: "web", State: "dozing"}), slipway.EINVALID, "")
	wantCode(t, "UpsertMachine nil", db.UpsertMachine(ctx, nil), slipway.EINVALID, "")
}

// TestUpgradeFromVersion1 opens a file written with the first schema: its
// deployments read back without steps, and the new tables work.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := t.Context()
	old, path := openAtVersion(t, 1)
	for _, q := range []string{
		`INSERT INTO projects (name, repo, repo_key, created_at) VALUES ('web', 'file:///r', 'file:///r', '2025-01-01T00:00:00.000000000Z')`,
		`INSERT INTO deployments (id, project, status, timings, created_at, finished_at)
		VALUES ('d-old', 'web', 'succeeded', '{"total":5}', '2025-01-01T00:00:00.000000000Z', '2025-01-01T00:00:05.000000000Z')`,
	} {
		if _, err := old.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a version 1 file: %v", err)
	}
	defer db.Close()
	if v, err := schemaVersion(ctx, db.read); err != nil || v != len(migrations) {
		t.Errorf("schema version after upgrade = %d, %v; want %d", v, err, len(migrations))
	}
	d := mustDeployment(t, db, "d-old")
	if d.Steps != nil || d.Timings["total"] != 5 || d.Status != slipway.StatusSucceeded {
		t.Errorf("old deployment after upgrade = %+v, want no steps and its timings", d)
	}
	if err := db.UpsertMachine(ctx, &slipway.Machine{Project: "web", Provider: "process", State: slipway.MachineAsleep}); err != nil {
		t.Errorf("UpsertMachine after upgrade: %v", err)
	}
	nd := mustCreateDeployment(t, db, &slipway.Deployment{Project: "web"})
	steps := []slipway.BuildStep{{N: 1, Instruction: "STEP 1/1: FROM scratch", DurationMs: 1}}
	if err := db.FinishDeployment(ctx, nd.ID, slipway.DeploymentResult{Status: slipway.StatusFailed, Steps: steps}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := mustDeployment(t, db, nd.ID); !reflect.DeepEqual(got.Steps, steps) {
		t.Errorf("steps after upgrade = %+v, want %+v", got.Steps, steps)
	}
}
