package buildah

import (
	"golang.org/x/sys/unix"
	"slices"

	"fmt"
	"strings"
	"testing"
)

func TestStepParser(t *testing.T) {
	out := `[1/2] STEP 1/2: FROM localhost/base/busybox:1 AS b
[1/2] STEP 2/2: RUN echo build > /out
--> Using cache 9c3b986e9d3f
--> 9c3b986e9d3
[2/2] STEP 1/3: FROM localhost/base/busybox:1
[2/2] STEP 2/3: COPY --from=b /out /out
--> 495494fb8c3
[2/2] STEP 3/3: RUN cat /out
build
COMMIT localhost/test:ms
--> c10991999cb
Successfully tagged localhost/test:ms
c10991999cbbd5c00b55fe4f1b4ab609e50bf030d6368312fe6cf6a0cbb341fc`
	var reports []string
	sp := stepParser{progress: func(s Step, cached int) {
		reports = append(reports, fmt.Sprintf("%d/%d %d/%d cached=%d", s.Stage, s.Stages, s.N, s.Total, cached))
	}}
	for _, l := range strings.Split(out, "\n") {
		sp.line(l)
	}
	// Each step as it starts, and again when the cache serves it.
	wantReports := "1/2 1/2 cached=0,1/2 2/2 cached=0,1/2 2/2 cached=1,2/2 1/3 cached=1,2/2 2/3 cached=1,2/2 3/3 cached=1"
	if got := strings.Join(reports, ","); got != wantReports {
		t.Errorf("progress reports = %s, want %s", got, wantReports)
	}
	want := []string{
		"[1/2] STEP 1/2: FROM localhost/base/busybox:1 AS b",
		"[1/2] STEP 2/2: RUN echo build > /out",
		"[2/2] STEP 1/3: FROM localhost/base/busybox:1",
		"[2/2] STEP 2/3: COPY --from=b /out /out",
		"[2/2] STEP 3/3: RUN cat /out",
	}
	if len(sp.steps) != len(want) {
		t.Fatalf("parsed %d steps, want %d: %+v", len(sp.steps), len(want), sp.steps)
	}
	for i, s := range sp.steps {
		if s.String() != want[i] {
			t.Errorf("step %d = %q, want %q", i, s.String(), want[i])
		}
	}
	if !sp.steps[1].Cached || sp.steps[3].Cached {
		t.Errorf("Cached flags = %v, %v; want true, false", sp.steps[1].Cached, sp.steps[3].Cached)
	}
	if s := sp.steps[4]; s.Stage != 2 || s.Stages != 2 || s.N != 3 || s.Total != 3 || s.Instruction != "RUN cat /out" {
		t.Errorf("step 4 = %+v", s)
	}
	if sp.open {
		t.Error("COMMIT did not close the last step")
	}
	if sp.last != "c10991999cbbd5c00b55fe4f1b4ab609e50bf030d6368312fe6cf6a0cbb341fc" {
		t.Errorf("last line = %q, want the image id", sp.last)
	}
	// The image each step produced: the cached layer's id, the id printed
	// after a step, after a COMMIT; none for a FROM.
	var images []string
	for _, s := range sp.steps {
		images = append(images, s.Image)
	}
	if got, want := strings.Join(images, ","), ",9c3b986e9d3f,,495494fb8c3,c10991999cb"; got != want {
		t.Errorf("step images = %s, want %s", got, want)
	}
}

func TestCheckTag(t *testing.T) {
	tests := []struct {
		ref string
		ok  bool
	}{
		{"127.0.0.1:5000/app:0123abc", true},
		{"localhost/base/busybox:1", true},
		{"app:v1", true},
		{"127.0.0.1:5000/app", false},
		{"app", false},
		{"app:latest", false},
		{"127.0.0.1:5000/app:latest", false},
		{"app:", false},
		{"app@sha256:0000", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := checkTag(tt.ref); (err == nil) != tt.ok {
			t.Errorf("checkTag(%q) = %v, want ok=%v", tt.ref, err, tt.ok)
		}
	}
}

func TestLineWriters(t *testing.T) {
	var out, errw strings.Builder
	tl := newTail(3)
	lw := newLineWriters(&out, &errw, tl)
	var seen []string
	lw.stdout.onLine = func(s string) { seen = append(seen, s) }
	for _, chunk := range []string{"a", "b\nc", "\r\n", "d\ne\nf"} {
		lw.stdout.Write([]byte(chunk))
	}
	lw.stderr.Write([]byte("oops\n"))
	lw.flush()
	if got := out.String(); got != "ab\nc\nd\ne\nf\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := errw.String(); got != "oops\n" {
		t.Errorf("stderr = %q", got)
	}
	if got := strings.Join(seen, ","); got != "ab,c,d,e,f" {
		t.Errorf("onLine saw %q", got)
	}
	if got := strings.Join(tl.lines(), ","); got != "e,oops,f" {
		t.Errorf("tail = %q, want e,oops,f", got)
	}
}

// A line longer than maxLine reaches the destination whole, so that
// secrets are masked before anyone cuts it; the tail keeps its start.
func TestLineWritersLongLine(t *testing.T) {
	var out strings.Builder
	tl := newTail(3)
	lw := newLineWriters(&out, &out, tl)
	long := strings.Repeat("a", maxLine-3) + "SECRET" + strings.Repeat("b", maxLine)
	for c := range slices.Chunk([]byte(long+"\nnext\n"), 1000) {
		lw.stdout.Write(c)
	}
	lw.flush()
	if got := out.String(); got != long+"\nnext\n" {
		t.Errorf("stdout: %d bytes, %d lines, want the long line whole", len(got), strings.Count(got, "\n"))
	}
	if got := tl.lines(); len(got) != 2 || got[0] != long[:maxLine] || got[1] != "next" {
		t.Errorf("tail: %d lines, want the long line's first %d bytes and next", len(got), maxLine)
	}
}

func TestTomlString(t *testing.T) {
	if got, want := tomlString(`/a "b"\c`+"\n"), `"/a \"b\"\\c\u000A"`; got != want {
		t.Errorf("tomlString = %s, want %s", got, want)
	}
}

func TestShortRunRoot(t *testing.T) {
	long := "/tmp/" + strings.Repeat("x", 60) + "/podman/run"
	got := shortRunRoot(long)
	if len(got) > maxRunRoot || got == shortRunRoot("/tmp/"+strings.Repeat("y", 60)) {
		t.Errorf("shortRunRoot(%q) = %q, want a distinct path of at most %d characters", long, got, maxRunRoot)
	}
	if got != shortRunRoot(long) {
		t.Errorf("shortRunRoot is not stable")
	}
	if short := "/tmp/a/run"; shortRunRoot(short) != short {
		t.Errorf("shortRunRoot(%q) = %q, want it unchanged", short, shortRunRoot(short))
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"1.42.1", true}, {"1.35.1", true}, {"1.35.2", true}, {"2.0.0", true}, {"1.36.0-dev", true},
		{"1.35.0", false}, {"1.28.2", false}, {"1.9.9", false}, {"0.99.99", false}, {"", false}, {"garbage", false},
	} {
		if got := versionAtLeast(tt.v, MinVersion); got != tt.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", tt.v, MinVersion, got, tt.want)
		}
	}
}

func TestRlimitValue(t *testing.T) {
	if got := rlimitValue(unix.RLIM_INFINITY); got != "-1" {
		t.Errorf("rlimitValue(infinity) = %q, want -1", got)
	}
	if got := rlimitValue(1024); got != "1024" {
		t.Errorf("rlimitValue(1024) = %q", got)
	}
}
