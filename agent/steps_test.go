package agent

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/buildah"
)

const stepsDockerfile = `# syntax=docker/dockerfile:1
FROM base/node:20 AS deps
WORKDIR /app
COPY package*.json ./
RUN --mount=type=cache,target=/root/.npm npm ci

FROM deps AS build
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && \
    # a comment inside a continuation
    echo done

FROM base/node:20
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null
CMD ["node", "dist/index.js"]
`

func stepKeysOf(t *testing.T, df string, files map[string]string, secrets map[string]string) (*dockerfileStages, [][]string) {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	entries, err := contextEntries(dir, filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d, why := parseStages([]byte(df))
	if d == nil {
		t.Fatalf("parseStages: %s", why)
	}
	return d, d.keys(stepKeyInputs{entries: entries, digests: map[string]string{"base/node:20": "sha256:aaa"}, secretDigests: secrets})
}

// changed lists, per stage, which steps' keys differ between a and b.
func changed(a, b [][]string) string {
	var out []string
	for s := range a {
		var c []string
		for i := range a[s] {
			if a[s][i] != b[s][i] {
				c = append(c, string(rune('1'+i)))
			}
		}
		out = append(out, strings.Join(c, ""))
	}
	return strings.Join(out, "|")
}

func TestStepKeys(t *testing.T) {
	files := map[string]string{
		"package.json": "{}", "package-lock.json": "{}", "tsconfig.json": "{}",
		"src/index.ts": "1", "src/lib/a.ts": "a", "README.md": "r",
	}
	secrets := map[string]string{"token": "s1"}
	d, base := stepKeysOf(t, stepsDockerfile, files, secrets)
	if len(d.stages) != 3 || d.stages[0].name != "deps" || d.stages[1].name != "build" || d.stages[2].name != "" {
		t.Fatalf("stages = %+v", d.stages)
	}
	if got := d.stages[1].insts[3].text; got != "RUN npm run build && echo done" {
		t.Errorf("continued RUN = %q", got)
	}
	for s := range base {
		for i, k := range base[s] {
			if k == "" {
				t.Errorf("stage %d step %d has no key", s+1, i+1)
			}
		}
	}
	// Same inputs, same keys; the same instruction on the same parent in
	// two stages, the same key (podman shares that layer too).
	if _, again := stepKeysOf(t, stepsDockerfile, files, secrets); changed(base, again) != "||" {
		t.Errorf("keys differ between identical inputs: %s", changed(base, again))
	}
	if base[0][1] != base[2][1] {
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
			f := map[string]string{}
			for k, v := range files {
				f[k] = v
			}
			for k, v := range c.edit {
				f[k] = v
			}
			s := secrets
			if c.secrets != nil {
				s = c.secrets
			}
			_, keys := stepKeysOf(t, stepsDockerfile, f, s)
			if got := changed(base, keys); got != c.want {
				t.Errorf("changed steps = %q, want %q", got, c.want)
			}
		})
	}

	// What cannot be pinned down ends the stage's keys there.
	for _, c := range []struct{ name, df, want string }{
		{"ARG", "FROM base/node:20\nRUN a\nARG X=1\nRUN echo $X\n", "kk--"},
		{"bind mount", "FROM base/node:20\nRUN a\nRUN --mount=target=/src make\nRUN b\n", "kk--"},
		{"COPY from an image", "FROM base/node:20\nRUN a\nCOPY --from=other:1 /x /x\n", "kk-"},
		{"JSON COPY", "FROM base/node:20\nCOPY [\"a\", \"/a\"]\n", "k-"},
		{"unresolved image", "FROM other:1\nRUN a\n", "--"},
		{"scratch", "FROM scratch\nCOPY src /src\n", "kk"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, keys := stepKeysOf(t, c.df, files, nil)
			got := ""
			for _, k := range keys[0] {
				if k == "" {
					got += "-"
				} else {
					got += "k"
				}
			}
			if got != c.want {
				t.Errorf("keys = %s, want %s", got, c.want)
			}
		})
	}

	for _, c := range []struct{ name, df string }{
		{"escape directive", "# escape=`\nFROM base/node:20\n"},
		{"heredoc", "FROM base/node:20\nRUN <<EOF\necho hi\nEOF\n"},
		{"no FROM", "RUN a\n"},
	} {
		if d, why := parseStages([]byte(c.df)); d != nil || why == "" {
			t.Errorf("%s: parsed, want a reason not to", c.name)
		}
	}
}

func TestRewriteAndOriginalSteps(t *testing.T) {
	d, why := parseStages([]byte(stepsDockerfile))
	if d == nil {
		t.Fatal(why)
	}
	// deps cut whole, build after COPY tsconfig.json, the last stage after
	// its COPY --from=deps.
	cut := []int{3, 1, 2}
	images := []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"}
	var b bytes.Buffer
	d.rewrite(&b, cut, images, 0)
	want := `# syntax=docker/dockerfile:1
FROM aaaaaaaaaaaa AS deps
FROM bbbbbbbbbbbb AS build
COPY src ./src
RUN npm run build && \
    # a comment inside a continuation
    echo done
FROM cccccccccccc
COPY --from=build /app/dist ./dist
RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null
CMD ["node", "dist/index.js"]
`
	if b.String() != want {
		t.Errorf("rewritten Dockerfile:\n%s\nwant:\n%s", b.String(), want)
	}

	// podman's steps from the rewritten file, numbered back.
	ran := []buildah.Step{
		{Stage: 2, Stages: 3, N: 1, Total: 3, Instruction: "FROM bbbbbbbbbbbb AS build"},
		{Stage: 2, Stages: 3, N: 2, Total: 3, Instruction: "COPY src ./src", Image: "d1"},
		{Stage: 2, Stages: 3, N: 3, Total: 3, Instruction: "RUN npm run build && echo done", Image: "d2"},
		{Stage: 3, Stages: 3, N: 1, Total: 4, Instruction: "FROM cccccccccccc"},
		{Stage: 3, Stages: 3, N: 2, Total: 4, Instruction: "COPY --from=build /app/dist ./dist", Image: "e1"},
		{Stage: 3, Stages: 3, N: 3, Total: 4, Instruction: "RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null", Image: "e2", Cached: true},
		{Stage: 3, Stages: 3, N: 4, Total: 4, Instruction: `CMD ["node", "dist/index.js"]`, Image: "e3"},
	}
	var got []string
	for _, s := range d.originalSteps(cut, images, 0, ran) {
		c := ""
		if s.Cached {
			c = " (cached)"
		}
		got = append(got, s.String()+c+" "+s.Image)
	}
	wantSteps := []string{
		"[2/3] STEP 1/4: FROM deps AS build ",
		"[2/3] STEP 2/4: COPY tsconfig.json ./ (cached) bbbbbbbbbbbb",
		"[2/3] STEP 3/4: COPY src ./src d1",
		"[2/3] STEP 4/4: RUN npm run build && echo done d2",
		"[3/3] STEP 1/6: FROM base/node:20 ",
		"[3/3] STEP 2/6: WORKDIR /app (cached) ",
		"[3/3] STEP 3/6: COPY --from=deps /app/node_modules ./node_modules (cached) cccccccccccc",
		"[3/3] STEP 4/6: COPY --from=build /app/dist ./dist e1",
		"[3/3] STEP 5/6: RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null (cached) e2",
		`[3/3] STEP 6/6: CMD ["node", "dist/index.js"] e3`,
		"[1/3] STEP 1/4: FROM base/node:20 AS deps ",
		"[1/3] STEP 2/4: WORKDIR /app (cached) ",
		"[1/3] STEP 3/4: COPY package*.json ./ (cached) ",
		"[1/3] STEP 4/4: RUN --mount=type=cache,target=/root/.npm npm ci (cached) aaaaaaaaaaaa",
	}
	if strings.Join(got, "\n") != strings.Join(wantSteps, "\n") {
		t.Errorf("original steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSteps, "\n"))
	}

	// The log's step headers are renumbered the same way as they pass.
	plan := &stepPlan{d: d, cut: cut, images: images, file: "Dockerfile.rewritten"}
	var log bytes.Buffer
	w := plan.headers(&log)
	for _, l := range []string{
		"[2/3] STEP 1/3: FROM bbbbbbbbbbbb AS build\n",
		"[2/3] STEP 2/3: COPY src ./src\n",
		"--> d1\n",
		"[3/3] STEP 4/4: CMD [\"node\", \"dist/index.js\"]\n",
		"STEP 1/1: not a stage podman numbered\n",
	} {
		if _, err := w.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	wantLog := `[2/3] STEP 2/4: COPY tsconfig.json ./ (unchanged: image bbbbbbbbbbbb)
[2/3] STEP 3/4: COPY src ./src
--> d1
[3/3] STEP 6/6: CMD ["node", "dist/index.js"]
STEP 1/1: not a stage podman numbered
`
	if log.String() != wantLog {
		t.Errorf("log:\n%s\nwant:\n%s", log.String(), wantLog)
	}
	if s, cached := plan.progress(buildah.Step{Stage: 3, Stages: 3, N: 2, Total: 4, Instruction: "COPY --from=build /app/dist ./dist"}, 1); s.N != 4 || s.Total != 6 || cached != 7 {
		t.Errorf("progress = step %d/%d, %d cached; want 4/6, 7", s.N, s.Total, cached)
	}
}

// TestConfigTailLeftOut: the final stage's config-only last steps are left
// out of the rewritten Dockerfile, a recorded image of them is not started
// from, and they come back, not cached, in the deployment's steps and the
// log's numbering.
func TestConfigTailLeftOut(t *testing.T) {
	d, why := parseStages([]byte(stepsDockerfile))
	if d == nil {
		t.Fatal(why)
	}
	tail := d.configTail()
	if want := []string{`CMD ["node", "dist/index.js"]`}; !slices.Equal(tail, want) {
		t.Fatalf("configTail = %q, want %q", tail, want)
	}
	keys := d.keys(stepKeyInputs{digests: map[string]string{"base/node:20": "sha256:1"}})
	last := len(keys) - 1
	recs := map[string]stepRecord{keys[last][len(keys[last])-1]: {Image: "f1"}, keys[last][2]: {Image: "f0"}}
	cut, images := cutPlan(keys, recs, len(tail))
	if cut[last] != 2 || images[last] != "f0" {
		t.Fatalf("the last stage starts after step %d from %q, want after 2 (the CMD's record is not used) from f0", cut[last], images[last])
	}
	var b bytes.Buffer
	d.rewrite(&b, cut, images, len(tail))
	if s := b.String(); strings.Contains(s, "CMD") || !strings.HasSuffix(s, "FROM f0\nCOPY --from=build /app/dist ./dist\nRUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null\n") {
		t.Errorf("rewritten Dockerfile:\n%s", s)
	}
	ran := []buildah.Step{
		{Stage: 3, Stages: 3, N: 1, Total: 3, Instruction: "FROM f0"},
		{Stage: 3, Stages: 3, N: 2, Total: 3, Instruction: "COPY --from=build /app/dist ./dist", Image: "e1"},
		{Stage: 3, Stages: 3, N: 3, Total: 3, Instruction: "RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null", Image: "e2"},
	}
	plan := &stepPlan{d: d, keys: keys, cut: cut, images: images, tail: tail, file: "Dockerfile.rewritten"}
	var got []string
	for _, s := range plan.originalSteps(ran) {
		got = append(got, fmt.Sprintf("%s cached=%v %s", s, s.Cached, s.Image))
	}
	want := []string{
		"[3/3] STEP 1/6: FROM base/node:20 cached=false ",
		"[3/3] STEP 2/6: WORKDIR /app cached=true ",
		"[3/3] STEP 3/6: COPY --from=deps /app/node_modules ./node_modules cached=true f0",
		"[3/3] STEP 4/6: COPY --from=build /app/dist ./dist cached=false e1",
		"[3/3] STEP 5/6: RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null cached=false e2",
		`[3/3] STEP 6/6: CMD ["node", "dist/index.js"] cached=false `,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("original steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if h := plan.mapHeader("[3/3] STEP 2/3: COPY --from=build /app/dist ./dist"); h != "[3/3] STEP 4/6: COPY --from=build /app/dist ./dist" {
		t.Errorf("header renumbered to %q", h)
	}
	if h := plan.mapHeader("[2/3] STEP 2/4: COPY src ./src"); h != "[2/3] STEP 2/4: COPY src ./src" {
		t.Errorf("a stage that is not the last renumbered to %q", h)
	}
	if c := plan.config(); !slices.Equal(c, tail) {
		t.Errorf("config() = %q", c)
	}
	plan.drop()
	if c := plan.config(); c != nil {
		t.Errorf("a dropped plan builds as written, yet config() = %q", c)
	}
}
