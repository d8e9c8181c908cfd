package graphql_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// fakeMachines is the API's machine provider: Status finds the agents of
// the projects in dead gone and records their machines asleep, as the
// process provider does.
type fakeMachines struct {
	slipway.MachineProvider // the API only calls Status and Destroy
	store                   slipway.Store
	mu                      sync.Mutex
	dead                    map[string]bool
	checked                 []string
	destroyed               []string
	destroyErr              error
}

func (f *fakeMachines) Destroy(_ context.Context, project string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.destroyErr != nil {
		return f.destroyErr
	}
	f.destroyed = append(f.destroyed, project)
	return nil
}

func (f *fakeMachines) Status(ctx context.Context, project string) (slipway.MachineState, error) {
	f.mu.Lock()
	f.checked = append(f.checked, project)
	dead := f.dead[project]
	f.mu.Unlock()
	m, err := f.store.Machine(ctx, project)
	if err != nil {
		return "", err
	}
	if dead && m.State.Running() {
		m.State, m.PID, m.UpdatedAt = slipway.MachineAsleep, 0, time.Time{}
		if err := f.store.UpsertMachine(ctx, m); err != nil {
			return "", err
		}
	}
	return m.State, nil
}

func (f *fakeMachines) checkedProjects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.checked...)
}

type machineData struct {
	Project, Provider, State, VolumeDir string
	Pid, VolumeBytes, LastWakeMs        *int
	LastWokeAt, LastSleptAt             *time.Time
	Error                               *string
	UpdatedAt                           time.Time
}

const machineFields = `project provider state pid volumeDir volumeBytes lastWokeAt lastWakeMs lastSleptAt error updatedAt`

func TestMachines(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	ctx := t.Context()
	for _, name := range []string{"api", "db", "never"} {
		if err := e.store.CreateProject(ctx, &slipway.Project{Name: name, Repo: "file:///" + name, Branch: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	woke := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	slept := woke.Add(time.Minute)
	for _, m := range []*slipway.Machine{
		{Project: "web", Provider: "process", State: slipway.MachineAwake, PID: 321, VolumeDir: "/v/web", LastWokeAt: &woke, LastWakeMs: 84},
		{Project: "api", Provider: "process", State: slipway.MachineFailed, VolumeDir: "/v/api", VolumeBytes: 5 << 30,
			LastWokeAt: &woke, LastSleptAt: &slept, Error: "agent exited with status 1"},
		{Project: "db", Provider: "process", State: slipway.MachineBuilding, PID: 999, VolumeDir: "/v/db", LastWokeAt: &woke},
	} {
		if err := e.store.UpsertMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	e.machines.dead = map[string]bool{"db": true}

	var got struct{ Machines []machineData }
	e.do(t, `{ machines { `+machineFields+` } }`, nil).ok(t, &got)
	if len(got.Machines) != 3 {
		t.Fatalf("machines = %+v, want api, db, web", got.Machines)
	}
	api, db, web := got.Machines[0], got.Machines[1], got.Machines[2]
	if api.Project != "api" || api.State != "FAILED" || api.Pid != nil || api.Error == nil || *api.Error != "agent exited with status 1" ||
		api.VolumeBytes == nil || *api.VolumeBytes != 5<<30 || api.LastWakeMs != nil || api.LastSleptAt == nil || !api.LastSleptAt.Equal(slept) {
		t.Errorf("api machine = %+v", api)
	}
	if web.Project != "web" || web.State != "AWAKE" || web.Pid == nil || *web.Pid != 321 || web.LastWakeMs == nil || *web.LastWakeMs != 84 ||
		web.Error != nil || web.VolumeBytes != nil || web.VolumeDir != "/v/web" || web.Provider != "process" || web.UpdatedAt.IsZero() {
		t.Errorf("web machine = %+v", web)
	}
	// The store said building, but its agent is gone: re-checked, asleep.
	if db.Project != "db" || db.State != "ASLEEP" || db.Pid != nil {
		t.Errorf("db machine with a dead agent = %+v, want asleep without a pid", db)
	}
	if checked := e.machines.checkedProjects(); len(checked) != 2 {
		t.Errorf("provider re-checked %v; want only the machines recorded as running (db, web)", checked)
	}

	var viaProject struct {
		Web, Never struct {
			Machine *machineData
		}
	}
	e.do(t, `{ web: project(name: "web") { machine { project state lastWakeMs } } never: project(name: "never") { machine { state } } }`, nil).ok(t, &viaProject)
	if m := viaProject.Web.Machine; m == nil || m.State != "AWAKE" || m.LastWakeMs == nil || *m.LastWakeMs != 84 {
		t.Errorf("project(web).machine = %+v", m)
	}
	if viaProject.Never.Machine != nil {
		t.Errorf("project(never).machine = %+v, want null", viaProject.Never.Machine)
	}
}

func TestMachinesEmpty(t *testing.T) {
	e := newEnv(t, nil)
	var got struct{ Machines []machineData }
	r := e.do(t, `{ machines { project } }`, nil)
	r.ok(t, &got)
	if got.Machines == nil || len(got.Machines) != 0 {
		t.Errorf("machines of an empty store = %s, want []", r.raw)
	}
}
