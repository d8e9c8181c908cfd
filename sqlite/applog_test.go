package sqlite

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func appLines(project, release string, from, to int64, at time.Time) []slipway.AppLogLine {
	var lines []slipway.AppLogLine
	for n := from; n <= to; n++ {
		lines = append(lines, slipway.AppLogLine{Project: project, N: n, Release: release, Time: at.Add(time.Duration(n) * time.Second),
			Stream: []string{"stdout", "stderr"}[n%2], Text: fmt.Sprintf("line %d", n)})
	}
	return lines
}

func appNs(lines []slipway.AppLogLine) []int64 {
	var ns []int64
	for _, l := range lines {
		ns = append(ns, l.N)
	}
	return ns
}

func TestAppLogLines(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "web", Repo: "file:///r", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LastAppLogLine(ctx, "web"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("LastAppLogLine with none: %v, want not_found", err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if err := db.AppendAppLogLines(ctx, append(appLines("web", "d1", 1, 5, at), appLines("web", "d2", 6, 8, at)...)); err != nil {
		t.Fatal(err)
	}
	// Redelivered lines are ignored, the first text kept.
	again := appLines("web", "d1", 4, 4, at)
	again[0].Text = "changed"
	if err := db.AppendAppLogLines(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAppLogLines(ctx, appLines("nope", "d1", 1, 1, at)); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("a line of an unknown project: %v, want not_found", err)
	}
	for _, tc := range []struct {
		q    slipway.AppLogQuery
		want []int64
	}{
		{slipway.AppLogQuery{Project: "web"}, []int64{1, 2, 3, 4, 5, 6, 7, 8}},
		{slipway.AppLogQuery{Project: "web", Tail: 3}, []int64{6, 7, 8}},
		{slipway.AppLogQuery{Project: "web", Release: "d1", Tail: 2}, []int64{4, 5}},
		{slipway.AppLogQuery{Project: "web", After: 6}, []int64{7, 8}},
		{slipway.AppLogQuery{Project: "other"}, nil},
	} {
		got, err := db.AppLogLines(ctx, tc.q)
		if err != nil || !slices.Equal(appNs(got), tc.want) {
			t.Errorf("AppLogLines(%+v) = %v, %v; want %v", tc.q, appNs(got), err, tc.want)
		}
	}
	got, _ := db.AppLogLines(ctx, slipway.AppLogQuery{Project: "web", After: 3, Tail: 1, Release: "d1"})
	want := appLines("web", "d1", 5, 5, at)[0]
	if len(got) != 1 || got[0] != want {
		t.Errorf("line 5 = %+v, want %+v", got, want)
	}
	if l, err := db.LastAppLogLine(ctx, "web"); err != nil || l.N != 8 || l.Release != "d2" {
		t.Errorf("LastAppLogLine = %+v, %v; want line 8 of d2", l, err)
	}
	if err := db.DeleteProject(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.AppLogLines(ctx, slipway.AppLogQuery{Project: "web"}); len(got) != 0 {
		t.Errorf("after deleting the project: %d lines left", len(got))
	}
}

func TestPruneAppLogs(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	for _, name := range []string{"aged", "sized", "free"} {
		if err := db.CreateProject(ctx, &slipway.Project{Name: name, Repo: "file:///r", Branch: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, name := range []string{"aged", "sized", "free"} {
		if err := db.AppendAppLogLines(ctx, appLines(name, "d1", 1, 10, at)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetLogRetention(ctx, "aged", slipway.LogRetention{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// "line N" is 6 bytes (7 for line 10): 20 bytes keep lines 8..10.
	if _, err := db.SetLogRetention(ctx, "sized", slipway.LogRetention{MaxBytes: 20}); err != nil {
		t.Fatal(err)
	}
	// An hour after line 4: lines 1..3 are older than an hour.
	res, err := db.PruneLogs(ctx, at.Add(time.Hour+4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if res.AppLines != 3+7 {
		t.Errorf("PruneLogs deleted %d app lines, want 10", res.AppLines)
	}
	for name, want := range map[string][]int64{"aged": {4, 5, 6, 7, 8, 9, 10}, "sized": {8, 9, 10}, "free": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}} {
		got, err := db.AppLogLines(ctx, slipway.AppLogQuery{Project: name})
		if err != nil || !slices.Equal(appNs(got), want) {
			t.Errorf("project %s keeps %v, %v; want %v", name, appNs(got), err, want)
		}
	}
}

func TestPruneAppLogsCapsLines(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "loud", Repo: "file:///r", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	last := int64(slipway.AppLogMaxLines + 50)
	for from := int64(1); from <= last; from += 10000 {
		if err := db.AppendAppLogLines(ctx, appLines("loud", "d1", from, min(from+9999, last), at)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.PruneLogs(ctx, at)
	if err != nil || res.AppLines != 50 {
		t.Fatalf("PruneLogs = %+v, %v; want 50 app lines deleted", res, err)
	}
	got, err := db.AppLogLines(ctx, slipway.AppLogQuery{Project: "loud", Tail: 1})
	if err != nil || len(got) != 1 || got[0].N != last {
		t.Errorf("last line %v, %v; want %d", appNs(got), err, last)
	}
	if first, _ := db.AppLogLines(ctx, slipway.AppLogQuery{Project: "loud", After: 0, Release: "d1", Tail: slipway.AppLogMaxLines + 1}); len(first) != slipway.AppLogMaxLines || first[0].N != 51 {
		t.Errorf("kept %d lines from %v, want %d from 51", len(first), appNs(first[:1]), slipway.AppLogMaxLines)
	}
}
