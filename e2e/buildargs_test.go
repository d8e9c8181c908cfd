package e2e

import (
	"bytes"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// A project's build arguments reach its builds: a Dockerfile whose
// default base does not exist builds FROM the --build-arg BASE given, an
// ARG's value ends up in the image, and after `project set` changes a
// value the same commit builds again instead of reusing the earlier image.
func TestBuildArgs(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Podman(t)
	base := testenv.BaseImage(t, p, s.Host)
	const greet = "ARG GREETING=unset\nRUN echo \"greeting: $GREETING\" > /greeting && cat /greeting\n"
	dir, sha1 := testenv.GitRepo(t, map[string]string{"Dockerfile": "ARG BASE=does-not-exist\nFROM ${BASE}\n" + greet})
	s.addProject(t, "args", dir, "--build-arg", "BASE="+base, "--build-arg", "GREETING=hello")
	if out, code := s.cli(t, "project", "show", "args"); code != 0 || !strings.Contains(out, "BASE="+base) || !strings.Contains(out, "GREETING=hello") {
		t.Errorf("project show = exit %d:\n%s", code, out)
	}
	logsOf := func(id string) string { l, _ := s.cli(t, "logs", id); return l }
	// greetingIn reports whether a layer of the image of commit sha holds
	// /greeting with the greeting (the config, with the build's history,
	// is not looked at).
	greetingIn := func(sha, greeting string) bool {
		for _, l := range layerBlobs(t, s.Host, "args", sha)[1:] {
			if bytes.Contains(l, []byte("greeting: "+greeting+"\n")) {
				return true
			}
		}
		return false
	}

	first := s.deployWait(t, "args", sha1)
	if first.Status != "succeeded" {
		t.Fatalf("build FROM ${BASE} with --build-arg BASE = %s", first.Status)
	}
	l1 := logsOf(first.ID)
	if !strings.Contains(l1, "build arguments: BASE, GREETING") || !strings.Contains(l1, "greeting: hello") || strings.Contains(l1, "does-not-exist") {
		t.Errorf("the build log does not show the build arguments at work:\n%s", l1)
	}
	if !greetingIn(sha1, "hello") {
		t.Errorf("the image of %s has no /greeting with the build argument's value", sha1)
	}

	// A base named literally: the same inputs reuse the image, a changed
	// value builds again.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\n" + greet})
	second := s.deployWait(t, "args", sha2)
	if second.Status != "succeeded" || !greetingIn(sha2, "hello") {
		t.Fatalf("build of %s = %s, or its image lacks the greeting", sha2, second.Status)
	}
	again := s.deployWait(t, "args", sha2)
	if l := logsOf(again.ID); !strings.Contains(l, "reusing its image without building") {
		t.Errorf("the same commit with the same build arguments was not reused:\n%s", l)
	}

	out, code := s.cli(t, "project", "set", "args", "--build-arg", "GREETING=bye")
	if code != 0 || !strings.Contains(out, "GREETING=bye") {
		t.Fatalf("project set --build-arg: exit %d:\n%s", code, out)
	}
	changed := s.deployWait(t, "args", sha2)
	l3 := logsOf(changed.ID)
	if strings.Contains(l3, "reusing its image") || !strings.Contains(l3, "greeting: bye") {
		t.Errorf("after the build argument changed, the earlier image was reused or the new value did not reach the build:\n%s", l3)
	}
	for _, st := range changed.Steps {
		if strings.Contains(st.Instruction, "RUN echo") && st.Cached {
			t.Errorf("the RUN step reading the changed build argument was cached: %+v", changed.Steps)
		}
	}
	if !greetingIn(sha2, "bye") || greetingIn(sha2, "hello") {
		t.Errorf("the image of %s after the change does not hold the new greeting only", sha2)
	}

	// Bad values are refused before anything is written.
	for _, arg := range []string{"novalue", "1X=y"} {
		if out, code := s.cli(t, "project", "set", "args", "--build-arg", arg); code == 0 || !strings.Contains(out, "invalid build argument") {
			t.Errorf("project set --build-arg %s = exit %d, %q; want a clear refusal", arg, code, out)
		}
	}
	if out, _ := s.cli(t, "projects", "--json"); !strings.Contains(out, `"value": "bye"`) || !strings.Contains(out, `"value": "`+base+`"`) {
		t.Errorf("projects --json after refused changes:\n%s", out)
	}
}
