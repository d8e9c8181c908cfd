package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/machine/process"
)

// One project's build cannot read another project's volume or the server's
// data directory, nor reach the server's loopback services, in either
// builder isolation mode; in rootless mode each project's agent runs as its
// own user, which cannot open another project's volume, and the volume is
// still only a cache (a reset or a deleted volume makes the next build cold,
// never wrong).
func TestBuildsAreIsolated(t *testing.T) {
	for _, mode := range []string{"rootless", "root"} {
		t.Run(mode, func(t *testing.T) { testIsolation(t, mode) })
	}
}

func testIsolation(t *testing.T, mode string) {
	dataDir := t.TempDir()
	args := []string{"--builder-isolation", mode}
	if mode == "rootless" {
		// Every build resets the project's builder storage afterwards:
		// housekeeping's reset must work rootless, and the next build must
		// still succeed.
		args = append(args, "--reset-threshold", "0.0001")
	}
	s := startServer(t, dataDir, "127.0.0.1:0", args...)
	want := map[string]string{"rootless": `builders: rootless buildah 1\.\d+\.\d+ \(user slipway-<project>, native overlay\)`, "root": `builders: root buildah 1\.\d+\.\d+, because`}[mode]
	s.waitOutput(t, regexp.MustCompile(want))
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)

	// Project A: a secret of its own on its volume.
	secret := "secret-of-project-a-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + mode
	dirA, shaA := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN --mount=type=cache,target=/cache echo cached > /cache/a.txt\nCOPY a.txt /a.txt\n",
		"a.txt":      "project a\n",
	})
	s.addProject(t, "a", dirA)
	if d := s.deployWait(t, "a", shaA); d.Status != "succeeded" {
		t.Fatalf("deployment of a = %s, want succeeded", d.Status)
	}
	volA := filepath.Join(dataDir, "volumes", "a")
	secretFile := filepath.Join(volA, "secret.txt")
	var stA syscall.Stat_t
	if err := syscall.Stat(volA, &stA); err != nil {
		t.Fatal(err)
	}
	// World-readable itself: only the volume's own mode protects it.
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secretFile, int(stA.Uid), int(stA.Gid)); err != nil {
		t.Fatal(err)
	}
	var st struct {
		NATSPort int `json:"natsPort"`
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
	if err != nil || json.Unmarshal(b, &st) != nil || st.NATSPort == 0 {
		t.Fatalf("read the NATS port from state.json: %v %s", err, b)
	}
	adminToken := s.Token

	// Project B tries to read A's volume and the server's data directory,
	// directly and through symlinks in its build context, and to reach
	// the registry and NATS on the server's loopback.
	registryPort := s.Host[strings.LastIndex(s.Host, ":")+1:]
	dockerfileB := "FROM " + base + "\n" +
		"COPY . /ctx/\n" +
		"RUN cat " + secretFile + " " + filepath.Join(dataDir, "admin-token") + " " + filepath.Join(dataDir, "state.json") + " /ctx/to-a/secret.txt /ctx/to-data/admin-token; " +
		"ls -la " + volA + " " + dataDir + " /ctx/to-a/; echo read-attempts-done\n" +
		// The markers are computed, so the Dockerfile's own text in the
		// log does not show them.
		"RUN (printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 " + registryPort + " | grep -q HTTP && echo registry-$((40+2))) || echo registry-unreachable\n" +
		"RUN (printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.2 " + registryPort + " | grep -q HTTP && echo gateway-$((40+2))) || echo gateway-unreachable\n" +
		"RUN (echo | nc -w 5 127.0.0.1 " + strconv.Itoa(st.NATSPort) + " | grep -q INFO && echo nats-$((40+2))) || echo nats-unreachable\n"
	dirB, shaB := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfileB})
	for link, target := range map[string]string{"to-a": volA, "to-data": dataDir, "secret-link": secretFile} {
		if err := os.Symlink(target, filepath.Join(dirB, link)); err != nil {
			t.Fatal(err)
		}
	}
	shaB = testenv.Commit(t, dirB, nil)
	s.addProject(t, "b", dirB)
	d := s.deployWait(t, "b", shaB)
	if d.Status != "succeeded" {
		t.Fatalf("deployment of b = %s, want succeeded", d.Status)
	}
	logs, _ := s.cli(t, "logs", d.ID)
	for _, w := range []string{"read-attempts-done", "registry-unreachable", "gateway-unreachable", "nats-unreachable"} {
		if !strings.Contains(logs, w) {
			t.Errorf("b's build log lacks %q:\n%s", w, logs)
		}
	}
	for _, leak := range []string{secret, adminToken, "registry-42", "gateway-42", "nats-42", "natsPort"} {
		if strings.Contains(logs, leak) {
			t.Errorf("b's build log shows %q: it read or reached what it must not:\n%s", leak, logs)
		}
	}
	if imageHas(t, s.Host, "b", shaB, secret) {
		t.Errorf("b's image holds a's secret")
	}

	// A COPY of a symlink that points at A's secret: the build fails (the
	// link resolves inside the context) or its image lacks the secret.
	dfB2 := "FROM " + base + "\nCOPY secret-link /stolen.txt\nRUN cat /stolen.txt; echo copy-done\n"
	shaB2 := testenv.Commit(t, dirB, map[string]string{"Dockerfile": dfB2})
	out, code := s.cli(t, "deploy", "b", "--commit", shaB2, "--wait")
	id2 := s.deployments(t, "b")[0].ID
	logs2, _ := s.cli(t, "logs", id2)
	if strings.Contains(out+logs2, secret) {
		t.Errorf("the COPY of a symlink to a's volume leaked the secret:\n%s\n%s", out, logs2)
	}
	if code == 0 && imageHas(t, s.Host, "b", shaB2, secret) {
		t.Errorf("b's image from the COPY of a symlink holds a's secret")
	}
	t.Logf("COPY of a symlink to a's volume: deploy exit %d", code)

	// RUN --network=host, which buildah honours, would put the step on the
	// host's loopback: the agent's policy refuses it, however it is spelled
	// (and behind it slipway-runc: buildah's TestRunStepsCannotReachTheHostLoopback).
	dfB3 := "FROM " + base + "\nARG NET=host\n" +
		"RUN --network=$NET (printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 " + registryPort + " | grep -q HTTP && echo registry-$((40+2))) || echo registry-unreachable\n"
	shaB3 := testenv.Commit(t, dirB, map[string]string{"Dockerfile": dfB3})
	out, code = s.cli(t, "deploy", "b", "--commit", shaB3, "--wait")
	id3 := s.deployments(t, "b")[0].ID
	logs3, _ := s.cli(t, "logs", id3)
	if code == 0 || strings.Contains(out+logs3, "registry-42") || !strings.Contains(logs3, "RUN --network=host would run the step on the builder's own network") {
		t.Errorf("RUN --network=host: deploy exit %d, want a failed build refused without reaching the registry:\n%s\n%s", code, out, logs3)
	}

	// `slipway machines` says whom each agent runs as.
	out, code = s.cli(t, "machines", "--json")
	var ms []struct {
		Project   string  `json:"project"`
		Isolation *string `json:"isolation"`
		User      *string `json:"user"`
	}
	if err := json.Unmarshal([]byte(out), &ms); code != 0 || err != nil || len(ms) != 2 {
		t.Fatalf("machines --json = exit %d, %v:\n%s", code, err, out)
	}
	for _, m := range ms {
		wantUser := ""
		if mode == "rootless" {
			wantUser = process.UserName(m.Project)
		}
		if m.Isolation == nil || *m.Isolation != mode || (m.User == nil) != (wantUser == "") || (m.User != nil && *m.User != wantUser) {
			t.Errorf("machine %s: isolation %v, user %v; want %s, %q", m.Project, m.Isolation, m.User, mode, wantUser)
		}
	}

	// Volumes are private to their owner, and the data directory lists
	// nothing to anyone else.
	for _, v := range []string{"a", "b"} {
		fi, err := os.Stat(filepath.Join(dataDir, "volumes", v))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("volume %s is mode %04o, want 0700", v, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dataDir); fi.Mode().Perm()&0o044 != 0 {
		t.Errorf("data directory is mode %04o: others can list it", fi.Mode().Perm())
	}

	if mode == "rootless" {
		ua, ub := builderUID(t, "a"), builderUID(t, "b")
		if ua == ub || ua == 0 || ub == 0 {
			t.Fatalf("builder uids a=%d b=%d: want two distinct unprivileged users", ua, ub)
		}
		if int(stA.Uid) != ua {
			t.Errorf("a's volume belongs to uid %d, want a's builder %d", stA.Uid, ua)
		}
		if !strings.Contains(s.agentLog("b"), fmt.Sprintf("uid=%d rootless=true", ub)) {
			t.Errorf("b's agent did not run as uid %d:\n%s", ub, s.agentLog("b"))
		}
		// What b's agent (its user) can open on this host.
		for _, path := range []string{secretFile, filepath.Join(volA, "git", "mirror.git", "HEAD"),
			filepath.Join(dataDir, "admin-token"), filepath.Join(dataDir, "state.json"), filepath.Join(dataDir, "slipway.db")} {
			if out, err := runAs(ub, "cat", path); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("as b's builder, cat %s: %v %q, want Permission denied", path, err, out)
			}
		}
		for _, dir := range []string{dataDir, filepath.Join(dataDir, "volumes")} {
			if out, err := runAs(ub, "ls", dir); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("as b's builder, ls %s: %v %q, want Permission denied", dir, err, out)
			}
		}
		if out, err := runAs(ub, "ls", filepath.Join(dataDir, "volumes", "b")); err != nil {
			t.Errorf("as b's builder, ls of its own volume: %v %s", err, out)
		}
		if !strings.Contains(logs, "resetting the build cache") {
			t.Errorf("b's log does not show housekeeping's reset (threshold 0.0001):\n%s", logs)
		}
	}

	// The volume is only a cache: deleted, the next build is cold and
	// correct (in rootless mode the user stays; the volume is remade).
	s.waitAsleep(t, "a")
	unmountAll(t, volA)
	if err := os.RemoveAll(volA); err != nil {
		t.Fatal(err)
	}
	shaA2 := testenv.Commit(t, dirA, map[string]string{"a.txt": "project a, again\n"})
	if d := s.deployWait(t, "a", shaA2); d.Status != "succeeded" {
		t.Fatalf("deployment of a after its volume was deleted = %s, want succeeded", d.Status)
	}
	if mode == "rootless" {
		var st2 syscall.Stat_t
		if err := syscall.Stat(volA, &st2); err != nil || int(st2.Uid) != builderUID(t, "a") {
			t.Errorf("a's remade volume: %v, owner %d, want a's builder", err, st2.Uid)
		}
	}
}

// builderUID is the uid of project's rootless builder user.
func builderUID(t *testing.T, project string) int {
	t.Helper()
	u, err := user.Lookup(process.UserName(project))
	if err != nil {
		t.Fatalf("builder user of %s: %v", project, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}

// runAs runs a command as uid (with its primary group, no others) and
// returns its combined output.
func runAs(uid int, name string, args ...string) (string, error) {
	gid := uid
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		gid, _ = strconv.Atoi(u.Gid)
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// imageHas reports whether any layer of the image repo:tag in the registry
// at host contains needle.
func imageHas(t *testing.T, host, repo, tag, needle string) bool {
	t.Helper()
	raw, _ := manifest(t, host, repo, tag)
	var m struct {
		Layers []struct {
			Digest    string `json:"digest"`
			MediaType string `json:"mediaType"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest without layers: %v %s", err, raw)
	}
	for _, l := range m.Layers {
		r := registryGet(t, host, fmt.Sprintf("/v2/%s/blobs/%s", repo, l.Digest), "")
		blob, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(l.MediaType, "gzip") {
			zr, err := gzip.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			if blob, err = io.ReadAll(zr); err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
		}
		if bytes.Contains(blob, []byte(needle)) {
			return true
		}
	}
	return false
}
