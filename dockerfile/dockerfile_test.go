package dockerfile

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
)

func mustParse(t *testing.T, src string, opts Options) *File {
	t.Helper()
	f, err := Parse([]byte(src), opts)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return f
}

// TestShapes reads the shapes real Dockerfiles take and checks what the
// builder's evaluator makes of them.
func TestShapes(t *testing.T) {
	t.Run("global ARG in FROM", func(t *testing.T) {
		src := "ARG BASE=reg.example/base:1\nARG TAG\nFROM ${BASE} AS one\nFROM $BASE\n"
		f := mustParse(t, src, Options{})
		if f.Head != 2 || f.Stages[0].Base != "reg.example/base:1" || f.Stages[1].Base != "reg.example/base:1" {
			t.Errorf("head %d, bases %q %q", f.Head, f.Stages[0].Base, f.Stages[1].Base)
		}
		f = mustParse(t, src, Options{BuildArgs: map[string]string{"BASE": "other:2"}})
		if f.Stages[0].Base != "other:2" {
			t.Errorf("with --build-arg BASE=other:2, base %q", f.Stages[0].Base)
		}
		if _, err := Parse([]byte("ARG B\nFROM ${B}\n"), Options{}); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "names no image") {
			t.Errorf("FROM of an empty argument: %v", err)
		}
	})
	t.Run("stages by name and number", func(t *testing.T) {
		f := mustParse(t, "FROM scratch AS a\nFROM a AS b\nFROM 1\nCOPY --from=0 /x /x\n", Options{})
		if f.Stages[1].BaseStage != 0 || f.Stages[2].BaseStage != 1 || !f.Stages[0].IsScratch() {
			t.Errorf("base stages %d %d", f.Stages[1].BaseStage, f.Stages[2].BaseStage)
		}
		if c := f.Stages[2].Steps[1].Copies; len(c) != 1 || c[0].From != "0" || f.StageIndex(c[0].From, 2) != 0 {
			t.Errorf("COPY --from=0: %+v", c)
		}
	})
	t.Run("stage names with build arguments", func(t *testing.T) {
		// buildah names the stage "base-foo" and builds the second FROM
		// on it (checked with buildah 1.42.1).
		f := mustParse(t, "ARG N=foo\nFROM reg.example/b:1 AS base-$N\nENV FROMSTAGE=1\nFROM base-foo\nRUN true\n", Options{})
		if f.Stages[0].Name != "base-foo" || f.Stages[1].BaseStage != 0 || !slices.Contains(f.Stages[1].Steps[1].Env, "FROMSTAGE=1") {
			t.Errorf("stage %q, second stage's base %d, env %q", f.Stages[0].Name, f.Stages[1].BaseStage, f.Stages[1].Steps[1].Env)
		}
	})
	t.Run("FROM headers", func(t *testing.T) {
		f := mustParse(t, "ARG BASE=reg.example/b:1\nFROM --platform=$BUILDPLATFORM ${BASE} as build\nFROM build\nFROM scratch AS out\n", Options{})
		for i, want := range []string{"FROM --platform=" + runtime.GOOS + "/" + runtime.GOARCH + " reg.example/b:1 AS build", "FROM build", "FROM scratch AS out"} {
			if got := f.Stages[i].Steps[0].Header(); got != want {
				t.Errorf("stage %d: Header() = %q, want %q", i, got, want)
			}
		}
	})
	t.Run("a stage FROM an earlier stage, by image format", func(t *testing.T) {
		// As buildah 1.42.1 builds it: in the OCI format the second stage
		// runs no trigger and has no SHELL or HEALTHCHECK.
		src := "FROM reg.example/b:1 AS a\nSHELL [\"/bin/bash\", \"-c\"]\nHEALTHCHECK CMD true\nONBUILD RUN echo trigger\nSTOPSIGNAL SIGINT\nFROM a\nRUN true\n"
		for _, c := range []struct {
			format   string
			steps    int
			shell    bool
			triggers bool
		}{{"", 2, false, false}, {"oci", 2, false, false}, {"docker", 3, true, true}} {
			f := mustParse(t, src, Options{Format: c.format})
			steps := f.Stages[1].Steps
			cfg := steps[len(steps)-1].Config
			if len(steps) != c.steps || steps[1].Trigger != c.triggers || (cfg.Shell != nil) != c.shell || (cfg.Healthcheck != nil) != c.shell || cfg.StopSignal != "SIGINT" {
				t.Errorf("format %q: %d steps (trigger %v), shell %q, healthcheck %v, stop signal %q", c.format, len(steps), steps[1].Trigger, cfg.Shell, cfg.Healthcheck, cfg.StopSignal)
			}
		}
		if _, err := Parse([]byte(src), Options{Format: "v2s1"}); err == nil {
			t.Error("format v2s1 accepted")
		}
	})
	t.Run("variables", func(t *testing.T) {
		base := &docker.Config{Env: []string{"HOME=/home/app", "PATH=/bin"}}
		f := mustParse(t, `FROM reg.example/b:1
ARG V=1.0
ENV DIR=/srv/$V
WORKDIR $DIR
COPY --chown=$V:$V src/${V}/* $HOME/
RUN --mount=type=bind,source=$V,target=/m echo $V
`, Options{BaseConfig: func(string) *docker.Config { return base }})
		steps := f.Stages[0].Steps
		if got := steps[3].Args; !slices.Equal(got, []string{"/srv/1.0"}) {
			t.Errorf("WORKDIR args %q", got)
		}
		c := steps[4].Copies[0]
		if c.Chown != "1.0:1.0" || !slices.Equal(c.Src, []string{"src/1.0/*"}) || c.Dest != "/home/app/" {
			t.Errorf("COPY %+v", c)
		}
		r := steps[5].Runs[0]
		if !slices.Equal(r.Mounts, []string{"type=bind,source=1.0,target=/m"}) || !slices.Contains(steps[5].Env, "V=1.0") {
			t.Errorf("RUN mounts %q env %q", r.Mounts, steps[5].Env)
		}
		if got := steps[5].Config.WorkingDir; got != "/srv/1.0" {
			t.Errorf("config after RUN: WorkingDir %q", got)
		}
	})
	t.Run("continuations, comments, escape directive", func(t *testing.T) {
		f := mustParse(t, "# escape=`\nFROM x\nRUN echo a `\n# a comment`\n\n  b\n", Options{})
		s := f.Stages[0].Steps[1]
		if s.StartLine != 3 || s.EndLine != 6 || !strings.Contains(s.Original, "echo a") || !strings.Contains(s.Original, "b") {
			t.Errorf("step %+v", s)
		}
	})
	t.Run("heredocs", func(t *testing.T) {
		f := mustParse(t, "FROM x\nRUN <<EOF\necho 1\necho 2\nEOF\nCOPY <<A /a\nhello\nA\n", Options{})
		run, cp := f.Stages[0].Steps[1], f.Stages[0].Steps[2]
		if run.EndLine != 5 || run.Header() != "RUN <<EOF (echo 1...)" || len(run.Runs[0].Files) != 1 {
			t.Errorf("RUN heredoc: lines %d-%d %q", run.StartLine, run.EndLine, run.Header())
		}
		if len(cp.Copies[0].Files) != 1 || cp.Copies[0].Files[0].Data != "\nhello" {
			t.Errorf("COPY heredoc: %+v", cp.Copies)
		}
	})
	t.Run("lower case and JSON forms", func(t *testing.T) {
		f := mustParse(t, "from x as Build\nrun [\"/bin/true\"]\ncmd [\"a\", \"b\"]\nentrypoint echo hi\n", Options{})
		st := f.Stages[0]
		if st.Name != "Build" || st.Steps[1].Command != "run" || !st.Steps[1].JSON || st.Steps[1].Runs[0].Shell {
			t.Errorf("stage %q, run %+v", st.Name, st.Steps[1])
		}
		cfg := st.Steps[3].Config
		if !slices.Equal(cfg.Entrypoint, []string{"/bin/sh", "-c", "echo hi"}) || !slices.Equal(cfg.Cmd, []string{"a", "b"}) {
			t.Errorf("ENTRYPOINT after CMD: entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
		}
	})
	t.Run("ONBUILD triggers of the base", func(t *testing.T) {
		base := &docker.Config{OnBuild: []string{"COPY . /app", "RUN make"}}
		f := mustParse(t, "FROM reg.example/onbuild:1\nCMD [\"x\"]\n", Options{BaseConfig: func(string) *docker.Config { return base }})
		steps := f.Stages[0].Steps
		if len(steps) != 4 || !steps[1].Trigger || !steps[2].Trigger || steps[3].Trigger || steps[1].Original != "COPY . /app" {
			for _, s := range steps {
				t.Errorf("step %q trigger %v", s.Original, s.Trigger)
			}
		}
		if len(steps[3].Config.OnBuild) != 0 {
			t.Errorf("the triggers stay in the config: %q", steps[3].Config.OnBuild)
		}
	})
	t.Run("environment order as the builder commits it", func(t *testing.T) {
		base := &docker.Config{Env: []string{"A=1", "PATH=/bin", "B=2"}}
		f := mustParse(t, "FROM reg.example/b:1\nENV PATH=/x:$PATH C=3\nRUN true\nENV A=0\n", Options{BaseConfig: func(string) *docker.Config { return base }})
		want := []string{"B=2", "PATH=/x:/bin", "C=3", "A=0"}
		if got := f.Stages[0].Steps[3].Config.Env; !slices.Equal(got, want) {
			t.Errorf("env %q, want %q", got, want)
		}
	})
}

// TestApply: the config-only steps applied to the config of the image
// built without them give the config of the image built with them.
func TestApply(t *testing.T) {
	base := &docker.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, Labels: map[string]string{"base": "1"}}
	src := `FROM reg.example/b:1
ARG PORT=8080
ENV APP=/srv
CMD ["old"]
RUN true
ENV PATH=/srv/bin:$PATH
EXPOSE $PORT 53/udp
USER app
LABEL a="x y" b=$APP
HEALTHCHECK --interval=5s CMD check
STOPSIGNAL SIGINT
ENTRYPOINT ["/entry"]
`
	f := mustParse(t, src, Options{BaseConfig: func(string) *docker.Config { return base }})
	steps := f.Stages[0].Steps
	cut := 4 // the RUN
	var tail []ConfigStep
	for _, s := range steps[cut+1:] {
		if !s.ConfigOnly() {
			t.Fatalf("%s is not config-only", s.Original)
		}
		tail = append(tail, s.ConfigStep())
	}
	// The tail travels as JSON (in the workflow's history).
	b, _ := json.Marshal(tail)
	var back []ConfigStep
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := Apply(steps[cut].Config, back, steps[cut].CmdSet, steps[cut].RunEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := steps[len(steps)-1].Config
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("Apply:\n%s\nwant:\n%s", gj, wj)
	}
	if !slices.Equal(got.Cmd, []string{"old"}) {
		t.Errorf("ENTRYPOINT after the stage's CMD kept cmd %q, want [old]", got.Cmd)
	}
	if _, err := Apply(docker.Config{}, []ConfigStep{{Command: "run", Args: []string{"true"}}}, false, nil); err == nil {
		t.Error("Apply of a RUN succeeded")
	}
}

// TestErrors: what the builder would refuse gets an error naming the line.
func TestErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"", "no instructions"},
		{"# only a comment\n", "no instructions"},
		{"ARG X=1\n", "FROM"},
		{"RUN true\nFROM x\n", "line 1: RUN before the first FROM"},
		{"FROM x\nBOGUS thing\n", "line 2"},
		{"FROM x\nRUN <<EOF\nnever ends\n", "unterminated heredoc"},
		{"FROM x\nCOPY --bogus=1 a b\n", "line 2"},
		{"FROM x\nRUN --security=insecure true\n", "only supports the --mount and --network flag"},
		{"FROM x\nEXPOSE\n", "line 2"},
		{"FROM\n", "FROM"},
	} {
		_, err := Parse([]byte(c.src), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.src, err, c.want)
		}
	}
}
