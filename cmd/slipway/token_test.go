package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

func TestTokenCommands(t *testing.T) {
	ts := newServer(t)
	code, stdout, stderr := ts.slipwayCmd(t, "token", "create", "--name", "ci")
	token := strings.TrimSpace(stdout)
	if code != 0 || !regexp.MustCompile(`^slw_[A-Za-z0-9_-]{43}$`).MatchString(token) || !strings.Contains(stderr, "not shown again") {
		t.Fatalf("token create = exit %d, stdout %q, stderr %q; want the token alone on stdout", code, stdout, stderr)
	}
	// The new token works, passed in SLIPWAY_TOKEN.
	t.Setenv("SLIPWAY_TOKEN", token)
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"--server", ts.url, "tokens"}, &out, &errOut); code != 0 ||
		!regexp.MustCompile(`(?m)^t-[0-9a-f]{12}\s+ci\s+\S+ ago\s+\S+`).MatchString(out.String()) || strings.Contains(out.String(), token) {
		t.Errorf("tokens with SLIPWAY_TOKEN = exit %d:\n%s%s", code, out.String(), errOut.String())
	}
	code, stdout, _ = ts.slipwayCmd(t, "tokens", "--json")
	var list []slipway.APIToken
	if err := json.Unmarshal([]byte(stdout), &list); code != 0 || err != nil || len(list) != 2 || list[1].Name != "ci" {
		t.Fatalf("tokens --json = exit %d, %v:\n%s", code, err, stdout)
	}
	if code, stdout, _ = ts.slipwayCmd(t, "token", "revoke", list[1].ID); code != 0 || !strings.Contains(stdout, "revoked") {
		t.Errorf("token revoke = exit %d, %q", code, stdout)
	}
	// Revoked, it is refused: exit 1, a clear message and a hint.
	out.Reset()
	errOut.Reset()
	code = run(t.Context(), []string{"--server", ts.url, "projects"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "invalid API token") || !strings.Contains(errOut.String(), "hint: pass an API token with --token") || out.Len() != 0 {
		t.Errorf("projects with a revoked token = exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if code, _, stderr := ts.slipwayCmd(t, "token", "revoke", "t-nope"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("token revoke t-nope = exit %d, %q", code, stderr)
	}
}

func TestMissingAndWrongToken(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	for name, args := range map[string][]string{
		"missing": {"--server", ts.url, "projects"},
		"wrong":   {"--server", ts.url, "--token", "slw_wrong", "deploy", "web"},
		"follow":  {"--server", ts.url, "--token", "slw_wrong", "logs", "-f", "d-1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // no ./slipway-data/admin-token here
			var out, errOut bytes.Buffer
			code := run(t.Context(), args, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), "(unauthorized)") || !strings.Contains(errOut.String(), "slipway token create") || out.Len() != 0 {
				t.Errorf("slipway %v = exit %d, stdout %q, stderr %q; want exit 1 and how to get a token", args, code, out.String(), errOut.String())
			}
		})
	}
	if n := len(ts.deployer.Requests()); n != 0 {
		t.Errorf("a wrong token reached the deployer %d times", n)
	}
}

// On the server's machine the CLI finds the admin token in
// ./slipway-data/admin-token by itself.
func TestAdminTokenFile(t *testing.T) {
	ts := newServer(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "slipway-data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slipway-data", "admin-token"), []byte(ts.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"--server", ts.url, "projects", "--json"}, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("projects with ./slipway-data/admin-token = exit %d, %q, %q", code, out.String(), errOut.String())
	}
}

// appendLines stores texts as deployment id's next log lines, in step
// fetch when they begin so, else build.
func (ts *testServer) appendLines(ctx context.Context, id string, texts ...string) error {
	have, err := ts.store.LogLines(ctx, id, 0, 0)
	if err != nil {
		return err
	}
	n := int64(0)
	if len(have) > 0 {
		n = have[len(have)-1].N
	}
	var lines []slipway.LogLine
	for _, text := range texts {
		n++
		step := "build"
		if strings.HasPrefix(text, "fetch") {
			step = "fetch"
		}
		lines = append(lines, slipway.LogLine{Deployment: id, N: n, Time: time.Now(), Stream: "stdout", Step: step, Text: text})
	}
	return ts.store.AppendLogLines(ctx, lines)
}

// watchedOutput is the CLI's stdout, calling on with all of it after each
// write (from the CLI's goroutine).
type watchedOutput struct {
	bytes.Buffer
	on func(out string)
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	w.on(w.String())
	return n, err
}

func TestLogsFollow(t *testing.T) {
	for _, tt := range []struct {
		status     slipway.Status
		wantCode   int
		wantStderr string
	}{
		{slipway.StatusSucceeded, 0, ""},
		{slipway.StatusFailed, 1, "error: deployment d-run failed at step \"STEP 2/2: RUN false\"\n"},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			ts := newServer(t)
			ts.addProject(t, "web")
			ctx := t.Context()
			sqlitetest.AddDeployment(t, ts.store, slipway.Deployment{ID: "d-run", Project: "web", Status: slipway.StatusBuilding})
			if err := ts.appendLines(ctx, "d-run", "fetching", "STEP 1/2: FROM base"); err != nil {
				t.Fatal(err)
			}
			// The build goes on as the follower prints: two more lines once
			// it printed the first two, the end once it printed those.
			var errOut bytes.Buffer
			var moved []string
			out := &watchedOutput{on: func(out string) {
				var err error
				switch {
				case strings.HasSuffix(out, "STEP 1/2: FROM base\n") && len(moved) == 0:
					moved = append(moved, "lines")
					err = ts.appendLines(ctx, "d-run", "STEP 2/2: RUN false", "last words")
				case strings.HasSuffix(out, "last words\n") && len(moved) == 1:
					moved = append(moved, "end")
					err = sqlitetest.Advance(ctx, ts.store, slipway.Deployment{ID: "d-run", Status: tt.status, FailedStep: "STEP 2/2: RUN false"})
				}
				if err != nil {
					t.Error(err)
				}
			}}
			code := run(ctx, []string{"--server", ts.url, "--token", ts.token, "logs", "-f", "d-run"}, out, &errOut)
			stdout, stderr := out.String(), errOut.String()
			want := "fetching\nSTEP 1/2: FROM base\nSTEP 2/2: RUN false\nlast words\n"
			if code != tt.wantCode || stdout != want || stderr != tt.wantStderr {
				t.Errorf("logs -f = exit %d, stdout %q, stderr %q; want exit %d, %q, %q", code, stdout, stderr, tt.wantCode, want, tt.wantStderr)
			}
		})
	}
}

func TestLogsSearchAndJSON(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	sqlitetest.AddDeployment(t, ts.store, slipway.Deployment{ID: "d-1", Project: "web", Status: slipway.StatusSucceeded})
	if err := ts.appendLines(t.Context(), "d-1", "fetching abc", "STEP 1/2: FROM base", "npm ERR! code E404", "STEP 2/2: COPY . ."); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := ts.slipwayCmd(t, "logs", "d-1", "--search", "err e404"); code != 0 || stdout != "npm ERR! code E404\n" {
		t.Errorf("logs --search = exit %d, %q", code, stdout)
	}
	if code, stdout, _ := ts.slipwayCmd(t, "logs", "d-1", "--step", "fetch"); code != 0 || stdout != "fetching abc\n" {
		t.Errorf("logs --step fetch = exit %d, %q", code, stdout)
	}
	code, stdout, _ := ts.slipwayCmd(t, "logs", "d-1", "--json", "--from", "3")
	var lines []struct {
		N          int64
		Step, Text string
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var x struct {
			N          int64
			Step, Text string
		}
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("logs --json line %q: %v", l, err)
		}
		lines = append(lines, x)
	}
	if code != 0 || fmt.Sprint(lines) != "[{3 build npm ERR! code E404} {4 build STEP 2/2: COPY . .}]" {
		t.Errorf("logs --json --from 3 = exit %d, %v", code, lines)
	}
}

func TestDeployFollowPlain(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	ts.deployer.script = func(d slipway.Deployment) []slipway.Deployment {
		if err := ts.appendLines(context.Background(), d.ID, "fetching", "STEP 1/1: FROM base", "pushed"); err != nil {
			t.Error(err)
		}
		building := d
		building.Status = slipway.StatusBuilding
		done := building
		end := d.CreatedAt.Add(1500 * time.Millisecond)
		done.Status, done.Image, done.Digest, done.FinishedAt = slipway.StatusSucceeded, "reg/web:"+shaA, digest, &end
		script := []slipway.Deployment{d}
		for range 30 {
			script = append(script, building)
		}
		return append(script, done)
	}
	code, stdout, stderr := ts.slipwayCmd(t, "deploy", "web", "--commit", shaA, "--follow")
	want := "deployment d-1 queued\nfetching\nSTEP 1/1: FROM base\npushed\ndeployment d-1 succeeded in 1.5s: reg/web:" + shaA + "@" + digest + "\n"
	if code != 0 || stdout != want {
		t.Errorf("deploy --follow = exit %d\nstdout %q\nstderr %q\nwant %q", code, stdout, stderr, want)
	}
	if code, _, stderr := ts.slipwayCmd(t, "deploy", "web", "--wait", "--follow"); code != 2 || !strings.Contains(stderr, "[follow wait] were all set") {
		t.Errorf("deploy --wait --follow = exit %d, %q; want a usage error", code, stderr)
	}
}

// The progress bar follows the steps and, for a failed build, leaves the
// last lines on screen.
func TestBarProgress(t *testing.T) {
	var out bytes.Buffer
	p := newBarProgress(&out)
	for _, text := range []string{"fetching", "[1/2] STEP 1/3: FROM base AS build", "[1/2] STEP 2/3: RUN make", "[2/2] STEP 1/2: FROM base", "\x1b[31mboom\x1b[0m"} {
		p.line(slipway.LogLine{Step: "build", Text: text})
	}
	if got := p.bar.String(); !strings.Contains(got, "(0/2") || !strings.Contains(got, "[2/2] STEP 1/2: FROM base") {
		t.Errorf("bar = %q, want stage 2's step 1 of 2", got)
	}
	p.finish(true)
	if s := out.String(); !strings.Contains(s, "last lines of the log:\n") || !strings.Contains(s, "  [1/2] STEP 2/3: RUN make\n") {
		t.Errorf("output after a failure:\n%s", s)
	}
}

// A token made with --scope is a registry token: listed with its scopes,
// refused by the API; a bad scope is refused with the form to use.
func TestRegistryTokenCommands(t *testing.T) {
	ts := newServer(t)
	code, stdout, stderr := ts.slipwayCmd(t, "token", "create", "--name", "bases", "--scope", "push:base/*", "--scope", "pull:demo")
	token := strings.TrimSpace(stdout)
	if code != 0 || !strings.HasPrefix(token, slipway.TokenPrefix) || !strings.Contains(stderr, "push:base/* pull:demo") || !strings.Contains(stderr, "podman login") {
		t.Fatalf("token create --scope = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, list := range [][]string{{"tokens"}, {"token", "list"}} {
		code, stdout, _ = ts.slipwayCmd(t, list...)
		if code != 0 || !regexp.MustCompile(`(?m)^t-[0-9a-f]{12}\s+bases\s+.*push:base/\* pull:demo$`).MatchString(stdout) ||
			!regexp.MustCompile(`(?m)^t-[0-9a-f]{12}\s+test\s+.*\sapi$`).MatchString(stdout) {
			t.Errorf("%v = exit %d:\n%s\nwant the registry token's scopes and api for the API token", list, code, stdout)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"--server", ts.url, "--token", token, "projects"}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "registry token") {
		t.Errorf("projects with a registry token = exit %d, %s%s; want refused as a registry token", code, out.String(), errOut.String())
	}
	code, _, stderr = ts.slipwayCmd(t, "token", "create", "--scope", "delete:base/*")
	if code == 0 || !strings.Contains(stderr, "push:REPO or pull:REPO") {
		t.Errorf("token create --scope delete:base/* = exit %d, %s; want refused with the form to use", code, stderr)
	}
}
