package agent

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/testenv"
)

const stepsDockerfile = `# syntax=docker/dockerfile:1
FROM localhost/base/node:20 AS deps
WORKDIR /app
COPY package*.json ./
RUN --mount=type=cache,target=/root/.npm npm ci

FROM deps AS build
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && \
    # a comment inside a continuation
    echo done

FROM localhost/base/node:20
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null
CMD ["node", "dist/index.js"]
`

// keysOf reads df in a context of files and computes its step keys.
func keysOf(t *testing.T, df string, files, secrets, buildArgs map[string]string) (*buildFile, stepKeys) {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, files)
	bf, err := testBuildFile(t, dir, df, buildArgs)
	if err != nil {
		t.Fatal(err)
	}
	in := bf.readInputs(buildArgs, secrets)
	if !in.read {
		t.Fatalf("readInputs: %s", in.why)
	}
	return bf, bf.stepKeys(in.entries, secrets)
}

// changed lists, per stage, which steps' keys differ between a and b.
func changed(a, b stepKeys) string {
	var out []string
	for s := range a.keys {
		var c []string
		for i := range a.keys[s] {
			if a.keys[s][i] != b.keys[s][i] {
				c = append(c, fmt.Sprint(i+1))
			}
		}
		out = append(out, strings.Join(c, ""))
	}
	return strings.Join(out, "|")
}

// keyed shows stage s's steps as k (a key) or - (none).
func keyed(k stepKeys, s int) string {
	out := ""
	for _, key := range k.keys[s] {
		if key == "" {
			out += "-"
		} else {
			out += "k"
		}
	}
	return out
}

var stepsFiles = map[string]string{
	"package.json": "{}", "package-lock.json": "{}", "tsconfig.json": "{}",
	"src/index.ts": "1", "src/lib/a.ts": "a", "README.md": "r",
}

func TestStepKeys(t *testing.T) {
	secrets := map[string]string{"token": "s1"}
	bf, base := keysOf(t, stepsDockerfile, stepsFiles, secrets, nil)
	if len(bf.Stages) != 3 || bf.Stages[0].Name != "deps" || bf.Stages[1].Name != "build" || bf.Stages[2].Name != "" {
		t.Fatalf("stages = %+v", bf.Stages)
	}
	for s := range base.keys {
		if k := keyed(base, s); strings.Contains(k, "-") {
			t.Errorf("stage %d keys %s (%q), want all", s+1, k, base.why[s])
		}
	}
	// Same inputs, same keys; the same step on the same parent in two
	// stages, the same key (the builder shares that layer too).
	if _, again := keysOf(t, stepsDockerfile, stepsFiles, secrets, nil); changed(base, again) != "||" {
		t.Errorf("keys differ between identical inputs: %s", changed(base, again))
	}
	if base.keys[0][1] != base.keys[2][1] {
		t.Error("WORKDIR /app on the same base has two keys")
	}

	for _, c := range []struct {
		name    string
		edit    map[string]string
		secrets map[string]string
		want    string // per stage, the steps whose keys change
	}{
		{"a source file", map[string]string{"src/lib/a.ts": "b"}, nil, "|34|456"},
		{"a file no step copies", map[string]string{"README.md": "x"}, nil, "||"},
		{"the lock file", map[string]string{"package-lock.json": "{1}"}, nil, "34|1234|3456"},
		{"a new file a glob matches", map[string]string{"package-extra.json": "{}"}, nil, "34|1234|3456"},
		{"a secret's value", nil, map[string]string{"token": "s2"}, "||56"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := maps.Clone(stepsFiles)
			maps.Copy(f, c.edit)
			s := secrets
			if c.secrets != nil {
				s = c.secrets
			}
			_, keys := keysOf(t, stepsDockerfile, f, s, nil)
			if got := changed(base, keys); got != c.want {
				t.Errorf("changed steps = %q, want %q", got, c.want)
			}
		})
	}

	// The shapes real Dockerfiles have: keyed through, and where a step
	// cannot be, the stage's keys end there, with a reason.
	for _, c := range []struct{ name, df, want, why string }{
		{"global ARG in FROM", "ARG BASE=localhost/base/node:20\nFROM ${BASE}\nARG BASE\nRUN echo $BASE\n", "kkk", ""},
		{"ARG mid-stage", "FROM localhost/b:1\nRUN a\nARG X=1\nRUN echo $X\n", "kkkk", ""},
		{"ENV and WORKDIR with variables", "FROM localhost/b:1\nENV APP=/srv\nWORKDIR $APP\nCOPY src $APP/src\n", "kkkk", ""},
		{"bind mount of the context", "FROM localhost/b:1\nRUN a\nRUN --mount=target=/src make\nRUN b\n", "kkkk", ""},
		{"bind mount from a stage", "FROM localhost/b:1 AS s\nRUN a\nFROM localhost/b:1\nRUN --mount=type=bind,from=s,source=/x,target=/x cat /x\n", "kk", ""},
		{"COPY from an image", "FROM localhost/b:1\nRUN a\nCOPY --from=localhost/other:1 /x /x\n", "kkk", ""},
		{"COPY from an unresolvable image", "FROM localhost/b:1\nRUN a\nCOPY --from=other:1 /x /x\n", "kk-", "COPY --from=other:1: the image's digest cannot be resolved"},
		{"JSON COPY", "FROM localhost/b:1\nCOPY [\"src\", \"/a\"]\n", "kk", ""},
		{"heredoc", "FROM localhost/b:1\nRUN <<EOF\necho hi\nEOF\nCOPY <<EOF /x\nhello\nEOF\n", "kkk", ""},
		{"escape directive", "# escape=`\nFROM localhost/b:1\nRUN echo a `\n  b\n", "kk", ""},
		{"lower case", "from localhost/b:1\nrun echo a\ncopy src /src\n", "kkk", ""},
		{"unresolved image", "FROM other:1\nRUN a\n", "--", "FROM other:1: the image's digest cannot be resolved"},
		{"scratch", "FROM scratch\nCOPY src /src\n", "kk", ""},
		{"ADD of a URL", "FROM localhost/b:1\nADD https://example.com/x /x\nRUN a\n", "k--", "ADD of a URL"},
		{"ADD of a URL with a checksum", "FROM localhost/b:1\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/x /x\n", "kk", ""},
		{"ONBUILD", "FROM localhost/b:1\nRUN a\nONBUILD RUN b\nRUN c\n", "kk--", "ONBUILD"},
		{"VOLUME", "FROM localhost/b:1\nRUN a\nVOLUME /data\n", "kk-", "VOLUME"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bf, keys := keysOf(t, c.df, stepsFiles, nil, nil)
			if got := keyed(keys, len(bf.Stages)-1); got != c.want {
				t.Errorf("keys = %s, want %s (why %q)", got, c.want, keys.why[len(bf.Stages)-1])
			}
			if c.why != "" && !strings.Contains(strings.Join(keys.whyNotReused(bf), "\n"), c.why) {
				t.Errorf("why = %q, want %q", keys.whyNotReused(bf), c.why)
			}
		})
	}

	// A build argument's value is an input of the steps that see it.
	df := "ARG BASE=localhost/base/node:20\nFROM ${BASE}\nCOPY src /src\nARG GREETING=hi\nRUN echo $GREETING\n"
	_, k1 := keysOf(t, df, stepsFiles, nil, nil)
	_, k2 := keysOf(t, df, stepsFiles, nil, map[string]string{"GREETING": "hello"})
	if got := changed(k1, k2); got != "34" {
		t.Errorf("a changed build argument changed steps %q, want 34 (its ARG and the RUN after it)", got)
	}
	_, k3 := keysOf(t, df, stepsFiles, nil, map[string]string{"BASE": "localhost/base/node:22"})
	if got := changed(k1, k3); got != "1234" {
		t.Errorf("another base image changed steps %q, want all", got)
	}
}

// plan makes a plan for bf as if the records held every step's key that
// cut names (cut[s] is the step stage s starts after; 0 for none).
func testPlan(t *testing.T, bf *buildFile, keys stepKeys, cut []int, buildArgs map[string]string) (*stepPlan, string) {
	t.Helper()
	recs := map[string]stepRecord{}
	for s, c := range cut {
		if c > 0 {
			recs[keys.keys[s][c]] = stepRecord{Image: fmt.Sprintf("%012d", s+1)}
		}
	}
	p := &stepPlan{bf: bf, keys: keys, recs: recs, tail: bf.configTail(), restored: make([][]string, len(bf.Stages))}
	p.cut, p.images = cutPlan(bf, keys, recs, p.tail)
	var b bytes.Buffer
	p.rewrite(&b, buildArgs)
	if err := p.check(b.Bytes(), buildArgs); err != nil {
		t.Fatalf("rewritten Dockerfile does not read back: %v\n%s", err, b.String())
	}
	p.file = "Dockerfile.rewritten"
	return p, b.String()
}

func TestRewriteAndOriginalSteps(t *testing.T) {
	bf, keys := keysOf(t, stepsDockerfile, stepsFiles, nil, nil)
	// deps cut whole, build after COPY tsconfig.json, the last stage after
	// its COPY --from=deps; its CMD is applied in the registry.
	plan, rewritten := testPlan(t, bf, keys, []int{3, 1, 2}, nil)
	want := `# syntax=docker/dockerfile:1
FROM 000000000001 AS deps
FROM 000000000002 AS build
COPY src ./src
RUN npm run build && \
    # a comment inside a continuation
    echo done

FROM 000000000003
COPY --from=build /app/dist ./dist
RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null
`
	if rewritten != want {
		t.Errorf("rewritten Dockerfile:\n%s\nwant:\n%s", rewritten, want)
	}

	// The builder's steps from the rewritten file, numbered back.
	ran := []buildah.Step{
		{Stage: 2, Stages: 3, N: 1, Total: 3, Instruction: "FROM 000000000002 AS build"},
		{Stage: 2, Stages: 3, N: 2, Total: 3, Instruction: "COPY src ./src", Image: "d1"},
		{Stage: 2, Stages: 3, N: 3, Total: 3, Instruction: "RUN npm run build && echo done", Image: "d2"},
		{Stage: 3, Stages: 3, N: 1, Total: 3, Instruction: "FROM 000000000003"},
		{Stage: 3, Stages: 3, N: 2, Total: 3, Instruction: "COPY --from=build /app/dist ./dist", Image: "e1"},
		{Stage: 3, Stages: 3, N: 3, Total: 3, Instruction: "RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null", Image: "e2", Cached: true},
	}
	var got []string
	for _, s := range plan.originalSteps(ran) {
		c := ""
		if s.Cached {
			c = " (cached)"
		}
		got = append(got, s.String()+c+" "+s.Image)
	}
	wantSteps := []string{
		"[2/3] STEP 1/4: FROM deps AS build ",
		"[2/3] STEP 2/4: COPY tsconfig.json ./ (cached) 000000000002",
		"[2/3] STEP 3/4: COPY src ./src d1",
		"[2/3] STEP 4/4: RUN npm run build && echo done d2",
		"[3/3] STEP 1/6: FROM localhost/base/node:20 ",
		"[3/3] STEP 2/6: WORKDIR /app (cached) ",
		"[3/3] STEP 3/6: COPY --from=deps /app/node_modules ./node_modules (cached) 000000000003",
		"[3/3] STEP 4/6: COPY --from=build /app/dist ./dist e1",
		"[3/3] STEP 5/6: RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null (cached) e2",
		"[1/3] STEP 1/4: FROM localhost/base/node:20 AS deps ",
		"[1/3] STEP 2/4: WORKDIR /app (cached) ",
		"[1/3] STEP 3/4: COPY package*.json ./ (cached) ",
		"[1/3] STEP 4/4: RUN --mount=type=cache,target=/root/.npm npm ci (cached) 000000000001",
		`[3/3] STEP 6/6: CMD ["node", "dist/index.js"] `,
	}
	if strings.Join(got, "\n") != strings.Join(wantSteps, "\n") {
		t.Errorf("original steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSteps, "\n"))
	}

	// The log's step headers are renumbered the same way as they pass.
	var log bytes.Buffer
	w := plan.headers(&log)
	for _, l := range []string{
		"[2/3] STEP 1/3: FROM 000000000002 AS build\n",
		"[2/3] STEP 2/3: COPY src ./src\n",
		"--> d1\n",
		"[3/3] STEP 3/3: RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null\n",
		"STEP 1/1: not a stage the builder numbered\n",
	} {
		if _, err := w.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	wantLog := `[2/3] STEP 2/4: COPY tsconfig.json ./ (unchanged: image 000000000002)
[2/3] STEP 3/4: COPY src ./src
--> d1
[3/3] STEP 5/6: RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null
STEP 1/1: not a stage the builder numbered
`
	if log.String() != wantLog {
		t.Errorf("log:\n%s\nwant:\n%s", log.String(), wantLog)
	}
	if s, cached := plan.progress(buildah.Step{Stage: 3, Stages: 3, N: 2, Total: 3, Instruction: "COPY --from=build /app/dist ./dist"}, 1); s.N != 4 || s.Total != 6 || cached != 7 {
		t.Errorf("progress = step %d/%d, %d cached; want 4/6, 7", s.N, s.Total, cached)
	}
	plan.drop()
	if plan.cutting() || plan.tail != 0 {
		t.Error("a dropped plan still cuts")
	}
}

// TestRestoredArgs: a stage that starts from the image of a step after an
// ARG declares the argument again, with its value, and the steps after it
// see the same build arguments; the restored ARG keeps the number of the
// reused step and is not one of the deployment's steps.
func TestRestoredArgs(t *testing.T) {
	df := `ARG BASE=localhost/base/node:20
ARG VERSION=1.0
FROM ${BASE} AS build
ARG VERSION
ARG QUOTE="it's \"quoted\""
ARG TARGETARCH
COPY src /src
RUN echo $VERSION $QUOTE $TARGETARCH
CMD ["x"]
`
	for _, args := range []map[string]string{nil, {"VERSION": "2.0"}} {
		bf, keys := keysOf(t, df, stepsFiles, nil, args)
		plan, rewritten := testPlan(t, bf, keys, []int{4}, args)
		wantVersion := "ARG VERSION='1.0'\n"
		if args != nil {
			wantVersion = "ARG VERSION\n"
		}
		if !strings.Contains(rewritten, "FROM 000000000001 AS build\n"+wantVersion+`ARG QUOTE='it'\''s "quoted"'`+"\nARG TARGETARCH\nRUN echo") {
			t.Errorf("rewritten Dockerfile (args %v):\n%s", args, rewritten)
		}
		ran := []buildah.Step{
			{N: 1, Total: 5, Instruction: "FROM 000000000001 AS build"},
			{N: 2, Total: 5, Instruction: "ARG VERSION"},
			{N: 3, Total: 5, Instruction: "ARG QUOTE=..."},
			{N: 4, Total: 5, Instruction: "ARG TARGETARCH"},
			{N: 5, Total: 5, Instruction: "RUN echo $VERSION $QUOTE $TARGETARCH", Image: "r1"},
		}
		var got []string
		for _, s := range plan.originalSteps(ran) {
			got = append(got, fmt.Sprintf("%s cached=%v", s, s.Cached))
		}
		want := []string{
			"STEP 1/7: FROM localhost/base/node:20 AS build cached=false",
			"STEP 2/7: ARG VERSION cached=true",
			`STEP 3/7: ARG QUOTE="it's \"quoted\"" cached=true`,
			"STEP 4/7: ARG TARGETARCH cached=true",
			"STEP 5/7: COPY src /src cached=true",
			"STEP 6/7: RUN echo $VERSION $QUOTE $TARGETARCH cached=false",
			`STEP 7/7: CMD ["x"] cached=false`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("original steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if h := plan.mapHeader("STEP 3/5: ARG QUOTE='it'\\''s \"quoted\"'"); !strings.HasPrefix(h, "STEP 5/7: ARG QUOTE") || !strings.Contains(h, "declared again") {
			t.Errorf("restored ARG header = %q", h)
		}
	}
}

// TestCutPlanRules: a stage never starts between a CMD and a later
// ENTRYPOINT, nor inside the base image's ONBUILD triggers, nor on the
// config-only steps applied in the registry.
func TestCutPlanRules(t *testing.T) {
	df := "FROM localhost/b:1\nCMD [\"x\"]\nRUN a\nENTRYPOINT [\"/e\"]\nRUN b\n"
	bf, keys := keysOf(t, df, stepsFiles, nil, nil)
	recs := map[string]stepRecord{keys.keys[0][2]: {Image: "i2"}, keys.keys[0][1]: {Image: "i1"}}
	if cut, _ := cutPlan(bf, keys, recs, 0); cut[0] != 0 {
		t.Errorf("cut after step %d, between a CMD and an ENTRYPOINT", cut[0])
	}
	recs[keys.keys[0][3]] = stepRecord{Image: "i3"}
	if cut, _ := cutPlan(bf, keys, recs, 0); cut[0] != 3 {
		t.Errorf("cut after step %d, want after the ENTRYPOINT (3)", cut[0])
	}
	df = "FROM localhost/b:1\nRUN a\nUSER x\nCMD [\"y\"]\n"
	bf, keys = keysOf(t, df, stepsFiles, nil, nil)
	recs = map[string]stepRecord{keys.keys[0][3]: {Image: "i3"}, keys.keys[0][1]: {Image: "i1"}}
	if n := bf.configTail(); n != 2 {
		t.Fatalf("configTail = %d, want 2", n)
	}
	if cut, _ := cutPlan(bf, keys, recs, 2); cut[0] != 1 {
		t.Errorf("cut after step %d, want 1 (the tail's records are not used)", cut[0])
	}
}
