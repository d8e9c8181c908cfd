package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeCacheInvalidation(t *testing.T) {
	inputs := map[string]string{"kernel release": "6.1.0", "buildah": "/usr/local/libexec/slipway/buildah 1 2", "/dev/net/tun": "Dcrw-rw-rw-"}
	cache := probeCache{path: filepath.Join(t.TempDir(), "rootless-probe.json"), inputs: func() map[string]string {
		out := map[string]string{}
		for k, v := range inputs {
			out[k] = v
		}
		return out
	}}
	runs := 0
	var fail error
	slow := func(context.Context) (RootlessProbe, error) {
		runs++
		if fail != nil {
			return RootlessProbe{}, fail
		}
		return RootlessProbe{Storage: "native overlay"}, nil
	}
	check := func(what string, wantRuns int, wantCached bool, wantWhy string) {
		t.Helper()
		p, err := cache.probe(t.Context(), slow)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if runs != wantRuns || p.Cached != wantCached || p.Reprobed != wantWhy || p.Storage != "native overlay" || p.ProbedAt.IsZero() {
			t.Errorf("%s: probe = %+v after %d slow runs; want %d runs, cached %v, reprobed %q", what, p, runs, wantRuns, wantCached, wantWhy)
		}
	}

	check("first start", 1, false, "no verdict kept")
	if st, err := os.Stat(cache.path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cache file: %v, %v; want mode 0600", st, err)
	}
	check("second start", 1, true, "")
	check("third start", 1, true, "")

	inputs["kernel release"] = "6.12.0"
	check("after a kernel upgrade", 2, false, "kernel release changed")
	check("the start after", 2, true, "")

	inputs["buildah"], inputs["/dev/net/tun"] = "/usr/local/libexec/slipway/buildah 3 4", "Dcrw-------"
	check("after buildah and tun changed", 3, false, "/dev/net/tun, buildah changed")

	inputs["subuid"] = "slipway-probe:100000:65536"
	check("with a new input", 4, false, "subuid changed")
	delete(inputs, "subuid")
	check("without it", 5, false, "subuid changed")

	// A failure is not kept: the next start probes again.
	inputs["kernel release"] = "6.13.0"
	fail = errors.New("buildah info as user slipway-probe failed")
	if _, err := cache.probe(t.Context(), slow); err == nil || runs != 6 {
		t.Fatalf("failed probe: err %v after %d runs; want the error after 6", err, runs)
	}
	if _, err := os.Stat(cache.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed probe left the cache file: %v", err)
	}
	fail = nil
	check("after the failure", 7, false, "no verdict kept")

	if err := os.WriteFile(cache.path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("a damaged cache file", 8, false, "the kept verdict is unreadable")
	check("the start after", 8, true, "")
}

// The host's inputs change with what the probe depends on.
func TestProbeInputs(t *testing.T) {
	dir := t.TempDir()
	h := hostFiles{
		Tun: filepath.Join(dir, "tun"), SubUID: filepath.Join(dir, "subuid"), SubGID: filepath.Join(dir, "subgid"),
		MaxUserNS: filepath.Join(dir, "max_user_namespaces"), Tools: []string{"sh", "no-such-tool-here"},
		Configs: []string{filepath.Join(dir, "storage.conf")}, User: "root",
	}
	write := func(name, text string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("tun", "", 0o666)
	write("subuid", "other:100000:65536\n", 0o644)
	write("subgid", "other:100000:65536\n", 0o644)
	write("max_user_namespaces", "15000\n", 0o644)
	before := probeInputs(dir, h)
	if before["no-such-tool-here"] != "not installed" || !strings.HasPrefix(before["sh"], "/") || before["kernel release"] == "" ||
		before[h.Configs[0]] != "missing" || before["user root"] != "0:0" || before["user namespaces"] != "15000" {
		t.Fatalf("probeInputs = %q", before)
	}
	if again := probeInputs(dir, h); len(changedInputs(before, again)) != 0 {
		t.Fatalf("inputs changed with nothing changed: %q", changedInputs(before, again))
	}

	for _, c := range []struct {
		what, name, text string
		mode             os.FileMode
		want             string
	}{
		{"another user's range", "subuid", "other:100000:65536\nsomeone:165536:65536\n", 0o644, ""},
		{"the probe user's range", "subuid", "other:100000:65536\nroot:165536:65536\n", 0o644, h.SubUID},
		{"its range by uid", "subgid", "other:100000:65536\n0:165536:65536\n", 0o644, h.SubGID},
		{"/dev/net/tun's mode", "tun", "", 0o600, h.Tun},
		{"a containers configuration file", "storage.conf", "[storage]\n", 0o644, h.Configs[0]},
		{"the user namespace limit", "max_user_namespaces", "0\n", 0o644, "user namespaces"},
	} {
		write(c.name, c.text, c.mode)
		after := probeInputs(dir, h)
		if got := strings.Join(changedInputs(before, after), ", "); got != c.want {
			t.Errorf("after a change of %s: changed %q, want %q", c.what, got, c.want)
		}
		before = after
	}
}
