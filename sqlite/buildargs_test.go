package sqlite

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/slipway-ci/slipway"
)

// A project's build arguments round-trip through the store, sorted by
// name; SetBuildArgs adds, replaces and removes them, and writes nothing
// when it fails.
func TestBuildArgs(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	p := &slipway.Project{Name: "web", Repo: "file:///r", Branch: "main",
		BuildArgs: []slipway.BuildArg{{Name: "GREETING", Value: "hello, world"}, {Name: "BASE", Value: "127.0.0.1:8080/base/busybox:1"}, {Name: "EMPTY", Value: ""}}}
	if err := db.CreateProject(ctx, p); err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	want := []slipway.BuildArg{{Name: "BASE", Value: "127.0.0.1:8080/base/busybox:1"}, {Name: "EMPTY", Value: ""}, {Name: "GREETING", Value: "hello, world"}}
	if !reflect.DeepEqual(p.BuildArgs, want) {
		t.Errorf("CreateProject left BuildArgs %+v, want them sorted: %+v", p.BuildArgs, want)
	}
	mustCreateProject(t, db, "plain", "file:///p")
	check := func(what string, want []slipway.BuildArg) {
		t.Helper()
		got, err := db.Project(ctx, "web")
		if err != nil || !reflect.DeepEqual(got.BuildArgs, want) {
			t.Errorf("%s: Project(web).BuildArgs = %+v, %v; want %+v", what, got.BuildArgs, err, want)
		}
	}
	check("created", want)
	all, err := db.Projects(ctx)
	if err != nil || len(all) != 2 || all[0].BuildArgs != nil || !reflect.DeepEqual(all[1].BuildArgs, want) {
		t.Errorf("Projects() = %+v, %v; want plain without and web with its build arguments", all, err)
	}
	byRepo, err := db.ProjectsByRepo(ctx, []string{"file:///r"})
	if err != nil || len(byRepo) != 1 || !reflect.DeepEqual(byRepo[0].BuildArgs, want) {
		t.Errorf("ProjectsByRepo = %+v, %v", byRepo, err)
	}

	got, err := db.SetBuildArgs(ctx, "web", []slipway.BuildArg{{Name: "GREETING", Value: "bye"}, {Name: "A_NEW", Value: "1"}}, []string{"EMPTY"})
	want = []slipway.BuildArg{{Name: "A_NEW", Value: "1"}, {Name: "BASE", Value: "127.0.0.1:8080/base/busybox:1"}, {Name: "GREETING", Value: "bye"}}
	if err != nil || got.Name != "web" || !reflect.DeepEqual(got.BuildArgs, want) {
		t.Errorf("SetBuildArgs = %+v, %v; want web with %+v", got, err, want)
	}
	check("changed", want)

	// Refusals write nothing.
	_, err = db.SetBuildArgs(ctx, "web", []slipway.BuildArg{{Name: "OK", Value: "1"}, {Name: "1X", Value: "y"}}, nil)
	wantCode(t, "bad name", err, slipway.EINVALID, `invalid build argument name "1X": use 1-128 letters, digits and '_', not starting with a digit (the NAME of the Dockerfile's ARG NAME)`)
	_, err = db.SetBuildArgs(ctx, "web", []slipway.BuildArg{{Name: "OK", Value: "1"}}, []string{"NOPE"})
	wantCode(t, "unset a missing one", err, slipway.ENOTFOUND, `project web has no build argument "NOPE" to unset`)
	var many []slipway.BuildArg
	for i := range slipway.MaxBuildArgs {
		many = append(many, slipway.BuildArg{Name: fmt.Sprintf("N%02d", i)})
	}
	_, err = db.SetBuildArgs(ctx, "web", many, nil)
	wantCode(t, "too many", err, slipway.ETOOLARGE, "")
	check("after refusals", want)
	_, err = db.SetBuildArgs(ctx, "nope", []slipway.BuildArg{{Name: "A", Value: "1"}}, nil)
	wantCode(t, "unknown project", err, slipway.ENOTFOUND, `project "nope" not found`)
	wantCode(t, "create with a bad argument", db.CreateProject(ctx, &slipway.Project{Name: "bad", Repo: "file:///b", BuildArgs: []slipway.BuildArg{{Name: "A", Value: "x"}, {Name: "A", Value: "y"}}}),
		slipway.EINVALID, "build argument A is given twice")
	if _, err := db.Project(ctx, "bad"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("a project refused for its build arguments was stored: %v", err)
	}

	// Changes at the same time all take effect.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := db.SetBuildArgs(ctx, "plain", []slipway.BuildArg{{Name: fmt.Sprintf("C%d", i), Value: "v"}}, nil); err != nil {
				t.Errorf("concurrent SetBuildArgs: %v", err)
			}
		})
	}
	wg.Wait()
	if p, _ := db.Project(ctx, "plain"); len(p.BuildArgs) != 8 {
		t.Errorf("after 8 concurrent additions: %+v", p.BuildArgs)
	}

	// Removing them all stores none.
	if got, err := db.SetBuildArgs(ctx, "web", nil, []string{"A_NEW", "BASE", "GREETING"}); err != nil || got.BuildArgs != nil {
		t.Errorf("unsetting every argument = %+v, %v; want none", got, err)
	}
	if _, err := db.SetBuildArgs(ctx, "web", []slipway.BuildArg{{Name: "KEPT", Value: "across a reopen"}}, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if p, err := db2.Project(ctx, "web"); err != nil || !reflect.DeepEqual(p.BuildArgs, []slipway.BuildArg{{Name: "KEPT", Value: "across a reopen"}}) {
		t.Errorf("after reopening: %+v, %v", p, err)
	}
	if err := db2.DeleteProject(ctx, "web"); err != nil {
		t.Errorf("DeleteProject of a project with build arguments: %v", err)
	}
}

// A project stored before build arguments existed (schema version 11)
// reads back with none, and can be given some.
func TestBuildArgsUpgrade(t *testing.T) {
	ctx := t.Context()
	old, path := openAtVersion(t, 11)
	if _, err := old.ExecContext(ctx, `INSERT INTO projects (name, repo, repo_key, created_at) VALUES ('web', 'file:///r', 'file:///r', '2025-01-01T00:00:00.000000000Z')`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a version 11 file: %v", err)
	}
	defer db.Close()
	if p, err := db.Project(ctx, "web"); err != nil || p.BuildArgs != nil {
		t.Errorf("old project = %+v, %v; want no build arguments", p, err)
	}
	if p, err := db.SetBuildArgs(ctx, "web", []slipway.BuildArg{{Name: "BASE", Value: "x"}}, nil); err != nil || len(p.BuildArgs) != 1 {
		t.Errorf("SetBuildArgs on an upgraded file = %+v, %v", p, err)
	}
}
