package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/server"
)

// The server's flags default to what a zero server.Config means: the
// defaults are written once, in the packages that own them.
func TestServerFlagDefaults(t *testing.T) {
	for _, env := range []string{"SLIPWAY_DATA_DIR", "SLIPWAY_LISTEN", "SLIPWAY_TEMPORAL_NAMESPACE", "SLIPWAY_BUILDER_ISOLATION"} {
		t.Setenv(env, "")
	}
	d := server.Config{}.WithDefaults()
	want := map[string]string{
		"data-dir":           d.DataDir,
		"listen":             d.Listen,
		"temporal-namespace": d.TemporalNamespace,
		"max-build":          d.MaxBuild.String(),
		"max-builds":         fmt.Sprint(d.MaxBuilds),
		"keep-images":        fmt.Sprint(d.KeepImages),
		"reset-threshold":    fmt.Sprint(d.ResetThreshold),
		"log-prune-every":    d.LogPruneEvery.String(),
		"builder-isolation":  d.BuilderIsolation,
		// A zero Config.WebhookMaxAge is github's default window.
		"webhook-max-age": github.DefaultMaxAge.String(),
		"preview-ttl":     "7d",
	}
	flags := newServerCmd().Flags()
	for name, w := range want {
		f := flags.Lookup(name)
		if f == nil {
			t.Errorf("no flag --%s", name)
			continue
		}
		if f.DefValue != w {
			t.Errorf("--%s default = %q, want %q (server.Config{}.WithDefaults())", name, f.DefValue, w)
		}
	}
}

// TLS verification of an external registry is on unless --registry-insecure;
// the old --registry-tls-verify still parses (deprecated: it is the
// default now).
func TestRegistryTLSFlags(t *testing.T) {
	cmd := newServerCmd()
	f := cmd.Flags()
	if in := f.Lookup("registry-insecure"); in == nil || in.DefValue != "false" {
		t.Fatalf("--registry-insecure = %+v, want a flag off by default", in)
	}
	if err := f.Parse([]string{"--registry-tls-verify", "--registry-insecure"}); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if old := f.Lookup("registry-tls-verify"); old == nil || old.Deprecated == "" || !strings.Contains(old.Deprecated, "--registry-insecure") {
		t.Errorf("--registry-tls-verify = %+v, want deprecated, pointing at --registry-insecure", old)
	}
	if v, _ := f.GetBool("registry-insecure"); !v {
		t.Error("--registry-insecure did not set")
	}
}

func TestPreviewTTLFlag(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want time.Duration
		bad  bool
	}{
		{arg: "off", want: -1},
		{arg: "0", want: -1},
		{arg: "7d", want: 7 * 24 * time.Hour},
		{arg: "90m", want: 90 * time.Minute},
		{arg: "3s", want: 3 * time.Second},
		{arg: "-1h", bad: true},
		{arg: "soon", bad: true},
		{arg: "xd", bad: true},
	} {
		var v previewTTL
		err := v.Set(tc.arg)
		if tc.bad {
			if err == nil {
				t.Errorf("--preview-ttl %s = %v, want an error", tc.arg, time.Duration(v))
			}
			continue
		}
		if err != nil || time.Duration(v) != tc.want {
			t.Errorf("--preview-ttl %s = %v, %v; want %v", tc.arg, time.Duration(v), err, tc.want)
		}
	}
}
