package main

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func TestMachines(t *testing.T) {
	ts := newServer(t)
	code, stdout, stderr := ts.slipwayCmd(t, "machines")
	if code != 0 || !strings.HasPrefix(stdout, "No machines yet") {
		t.Errorf("machines with none = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, stdout, _ = ts.slipwayCmd(t, "machines", "--json"); strings.TrimSpace(stdout) != "[]" {
		t.Errorf("machines --json with none = %q, want []", stdout)
	}

	woke := time.Now().UTC().Add(-3 * time.Minute).Truncate(time.Millisecond)
	slept := woke.Add(time.Minute)
	machines := []*slipway.Machine{
		{Project: "api", Provider: "process", State: slipway.MachineFailed, VolumeDir: "/data/volumes/api", VolumeBytes: 3 << 29,
			LastWokeAt: &woke, LastSleptAt: &slept, Error: "agent exited with status 1: no podman", UpdatedAt: slept},
		{Project: "web", Provider: "process", Isolation: "rootless", User: "slipway-web", State: slipway.MachineBuilding, PID: 4321, VolumeDir: "/data/volumes/web",
			LastWokeAt: &woke, LastWakeMs: 84, UpdatedAt: woke},
		{Project: "zzz", Provider: "process", State: slipway.MachineAsleep, VolumeDir: "/data/volumes/zzz", UpdatedAt: woke},
	}
	for _, m := range machines {
		ts.addProject(t, m.Project)
		if err := ts.store.UpsertMachine(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}

	code, stdout, stderr = ts.slipwayCmd(t, "machines")
	if code != 0 {
		t.Fatalf("machines = exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^PROJECT\s+STATE\s+RUNS AS\s+PID\s+LAST WAKE\s+WAKE MS\s+VOLUME$`),
		regexp.MustCompile(`^api\s+failed\s+-\s+-\s+3m ago\s+-\s+/data/volumes/api \(1\.5 GiB\)$`),
		regexp.MustCompile(`^    agent exited with status 1: no podman$`),
		regexp.MustCompile(`^web\s+building\s+rootless \(slipway-web\)\s+4321\s+3m ago\s+84\s+/data/volumes/web$`),
		regexp.MustCompile(`^zzz\s+asleep\s+-\s+-\s+-\s+-\s+/data/volumes/zzz$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("machines printed %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match for %s", i, lines[i], re)
		}
	}

	code, stdout, _ = ts.slipwayCmd(t, "machines", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("machines --json = exit %d, %v:\n%s", code, err, stdout)
	}
	keys := []string{"error", "isolation", "lastSleptAt", "lastWakeMs", "lastWokeAt", "pid", "project", "provider", "state", "updatedAt", "user", "volumeBytes", "volumeDir"}
	for _, m := range got {
		var have []string
		for k := range m {
			have = append(have, k)
		}
		slices.Sort(have)
		if !slices.Equal(have, keys) {
			t.Errorf("machine %v has keys %v, want %v", m["project"], have, keys)
		}
	}
	if len(got) != 3 {
		t.Fatalf("machines --json = %d machines, want 3", len(got))
	}
	api, web, zzz := got[0], got[1], got[2]
	if api["state"] != "failed" || api["error"] != "agent exited with status 1: no podman" || api["pid"] != nil || api["volumeBytes"] != float64(3<<29) {
		t.Errorf("api = %v", api)
	}
	if web["isolation"] != "rootless" || web["user"] != "slipway-web" || api["isolation"] != nil || api["user"] != nil {
		t.Errorf("isolation and user: web %v %v, api %v %v", web["isolation"], web["user"], api["isolation"], api["user"])
	}
	if web["state"] != "building" || web["pid"] != float64(4321) || web["lastWakeMs"] != float64(84) || web["error"] != nil || web["lastSleptAt"] != nil {
		t.Errorf("web = %v", web)
	}
	if zzz["state"] != "asleep" || zzz["lastWokeAt"] != nil || zzz["lastWakeMs"] != nil {
		t.Errorf("zzz = %v", zzz)
	}

	if code, _, stderr = ts.slipwayCmd(t, "machines", "extra"); code != 2 {
		t.Errorf("machines extra = exit %d, stderr %q; want a usage error", code, stderr)
	}
}

func TestDeploymentShow(t *testing.T) {
	ts := newServer(t)
	ts.seed(t)
	code, stdout, stderr := ts.slipwayCmd(t, "deployment", "d-ok")
	if code != 0 {
		t.Fatalf("deployment d-ok = exit %d, stderr %q", code, stderr)
	}
	for _, re := range []string{
		`(?m)^deployment:\s+d-ok$`,
		`(?m)^status:\s+succeeded$`,
		`(?m)^image:\s+127\.0\.0\.1:8080/web:a{40}$`,
		`(?m)^digest:\s+` + regexp.QuoteMeta(digest) + `$`,
		`(?m)^duration:\s+1m29s$`,
		`(?m)^PHASE\s+DURATION\n` +
			`queue\s+12ms\nwake\s+85ms\nfetch\s+1\.2s\nbuild\s+1m20s\npush\s+7\.7s\nrelease\s+480ms\ntotal\s+1m29s\n`,
		`(?m)^STEPS \(3, 2 cached\)\n` +
			`#\s+DURATION\s+CACHE\s+STEP\s+WHY\n` +
			`1\s+4ms\s+cached\s+STEP 1/3: FROM 127\.0\.0\.1:8080/base/node:22\s*\n` +
			`2\s+310ms\s+cached\s+STEP 2/3: RUN --mount=type=cache,target=/root/\.npm npm ci\s*\n` +
			`3\s+1m20s\s+-\s+STEP 3/3: RUN npm run build\s+follows step 2, which has no key\n`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("deployment d-ok lacks %s:\n%s", re, stdout)
		}
	}
	if strings.Contains(stdout, "error:") {
		t.Errorf("a succeeded deployment shows an error:\n%s", stdout)
	}

	_, stdout, _ = ts.slipwayCmd(t, "deployment", "d-bad")
	for _, want := range []string{"status:       failed", "failed step:  STEP 2/3: RUN make", "error:\n  RUN exit status 1\n  make: *** [all] Error 1\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("deployment d-bad lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "PHASE") || strings.Contains(stdout, "STEPS") {
		t.Errorf("deployment d-bad shows phases or steps it does not have:\n%s", stdout)
	}

	code, stdout, _ = ts.slipwayCmd(t, "deployment", "d-ok", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("deployment --json = exit %d, %v:\n%s", code, err, stdout)
	}
	if got["id"] != "d-ok" || len(got["steps"].([]any)) != 3 || got["timings"].(map[string]any)["push"] != float64(7703) {
		t.Errorf("deployment --json = %v", got)
	}

	code, _, stderr = ts.slipwayCmd(t, "deployment", "d-404")
	if code != 1 || stderr != "error: deployment \"d-404\" not found (not_found)\n" {
		t.Errorf("deployment d-404 = exit %d, stderr %q", code, stderr)
	}
}
