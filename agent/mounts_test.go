package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckMounts(t *testing.T) {
	ctx := t.TempDir()
	for _, d := range []string{"sub", "deep/er"} {
		if err := os.MkdirAll(filepath.Join(ctx, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ctx, "sub", "package.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"etc":          "/etc",
		"passwd":       "/etc/passwd",
		"up":           "../../../../../..",
		"inside":       "sub",
		"deep/er/back": "../../sub",
	} {
		if err := os.Symlink(target, filepath.Join(ctx, name)); err != nil {
			t.Fatal(err)
		}
	}
	real, err := filepath.EvalSymlinks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		run     string
		wantErr string // "" means allowed
	}{
		{"RUN --mount=type=cache,target=/root/.npm npm ci", ""},
		{"RUN --mount=type=bind,source=sub/package.json,target=/app/package.json npm ci", ""},
		{"RUN --mount=type=bind,target=/src ls /src", ""},
		{"RUN --mount=type=bind,source=/,target=/src ls /src", ""},
		{"RUN --mount=type=bind,source=../..,target=/src ls /src", ""},
		{"RUN --mount=type=bind,source=inside,target=/src ls /src", ""},
		{"RUN --mount=type=bind,source=deep/er/back/package.json,target=/p cat /p", ""},
		{"RUN --mount=type=bind,source=missing,target=/m true", ""},
		{"RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci", ""},
		{"RUN --mount=type=tmpfs,target=/tmp true", ""},
		{"RUN --mount=type=cache,id=x,source=etc,target=/m true", ""},
		{"RUN --mount=type=bind,source=passwd,target=/m cat /m", `source "passwd" is a symlink (or goes through one) that points outside the build context`},
		{"RUN --mount=source=passwd,target=/m cat /m", "points outside the build context"},
		{"RUN --mount=type=bind,src=etc/hostname,target=/m cat /m", `source "etc/hostname" is a symlink`},
		{"RUN --mount=type=bind,source=up/etc,target=/m ls /m", "points outside the build context"},
		{"RUN --mount=type=BIND,source=etc,target=/m ls /m", "points outside"},
		{`RUN "--mount=type=bind,source=etc,target=/m" ls /m`, "points outside"},
		{"RUN --network=none \\\n  --mount=type=bind,source=etc,target=/m \\\n  ls /m", "points outside"},
		{"# escape=`\nFROM x\nRUN `\n --mount=type=bind,source=etc,target=/m ls /m", "points outside"},
		{"RUN --mount=type=bind,from=build,source=/out,target=/out cp -r /out /app", "COPY --from=build what the step needs instead"},
		{"RUN --mount=from=build,source=/out,target=/out true", "a bind mount from another stage"},
		{"RUN --mount=type=cache,from=base,source=/x,target=/c true", "a cache mount from another stage or image"},
		{"ARG S=etc\nRUN --mount=type=bind,source=$S,target=/m ls /m", "uses a build argument"},
		{`RUN --mount=type=bind,"source=etc",target=/m ls /m`, "quoted mount options"},
	}
	for _, tt := range tests {
		err := checkMounts([]byte("FROM base\n"+tt.run+"\n"), real)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("checkMounts(%q) = %v, want it allowed", tt.run, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "is refused")):
			t.Errorf("checkMounts(%q) = %v, want an error containing %q", tt.run, err, tt.wantErr)
		}
	}
}

func TestClarifyCopyError(t *testing.T) {
	// podman 4.3's message for COPY link-abs /x, link-abs -> /etc/passwd
	// (its request dump shortened here).
	msg := `build failed at STEP 2/2: COPY link-abs /x (exit code 125): building at STEP "COPY link-abs /x": reading "/w/ctx/link-abs": error during bulk transfer for copier.request{Request:"GET", Root:"/", GetOptions:copier.GetOptions{UIDMap:[]idtools.IDMap(nil), ChownDirs:(*idtools.IDPair)(0xc0002d9d40)}, RemoveOptions:copier.RemoveOptions{All:false}}: copier: get: lstat "/link-abs"("/etc/passwd"): lstat /etc/passwd: no such file or directory`
	want := `build failed at STEP 2/2: COPY link-abs /x (exit code 125): building at STEP "COPY link-abs /x": reading "/w/ctx/link-abs": copier: get: lstat "/link-abs"("/etc/passwd"): lstat /etc/passwd: no such file or directory (link-abs is a symlink to /etc/passwd, outside the build context: a build only sees the files inside its context)`
	if got := clarifyCopyError(msg); got != want {
		t.Errorf("clarifyCopyError(...) =\n%s\nwant\n%s", got, want)
	}
	if got := clarifyCopyError("build failed at STEP 2/2: RUN false (exit code 1)"); got != "build failed at STEP 2/2: RUN false (exit code 1)" {
		t.Errorf("clarifyCopyError changed an unrelated message: %s", got)
	}
}

func TestOutwardCopySource(t *testing.T) {
	ctxDir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ctxDir, "secret-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "plain"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := " (secret-link is a symlink to " + outside + ", outside the build context: a build only sees the files inside its context)"
	for step, w := range map[string]string{
		"STEP 2/3: COPY secret-link /x":                want,
		"STEP 2/3: ADD --chown=1 plain secret-link /x": want,
		"STEP 2/3: COPY plain /x":                      "",
		"STEP 2/3: COPY --from=s secret-link /x":       "",
		"STEP 2/3: RUN cat secret-link":                "",
		"build":                                        "",
	} {
		if got := outwardCopySource(step, ctxDir); got != w {
			t.Errorf("outwardCopySource(%q) = %q, want %q", step, got, w)
		}
	}
}
