package server

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/gateway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// The adapter finds apps by the store: an unknown project has none
// (404), a known one's wake says nothing is deployed (ENOTFOUND, a 404
// page) until a deployment succeeds, and its current release is the
// newest succeeded deployment with an image that is no preview.
func TestAppHostReleases(t *testing.T) {
	store := sqlitetest.Open(t)
	h := newAppHost(nil, store, nil, time.Minute, time.Hour, slog.New(slog.DiscardHandler))
	if _, ok := h.Lookup(gateway.Route{Project: "nosuch"}); ok {
		t.Error("Lookup of an unknown project found an app")
	}
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "file:///nowhere"})
	app, ok := h.Lookup(gateway.Route{Project: "web"})
	if !ok {
		t.Fatal("Lookup of a project found no app")
	}
	if _, err := app.Wake(t.Context()); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Wake with nothing deployed = %v, want ENOTFOUND", err)
	}
	if again, _ := h.Lookup(gateway.Route{Project: "web"}); again != app {
		t.Error("a second Lookup returned another app: wakes in flight would not be shared")
	}
	ok1 := sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "c1", Status: slipway.StatusSucceeded, Image: "r/web:c1", Digest: "sha256:1"})
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "c2", Status: slipway.StatusFailed, Error: "boom"})
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(4), Commit: "c3", Status: slipway.StatusSucceeded, Image: "r/web:c3", Digest: "sha256:3", Preview: 4})
	d, err := app.(*projectApp).currentRelease(t.Context())
	if err != nil || d.ID != ok1.ID {
		t.Errorf("current release = %v, %v; want the succeeded deployment %s, not the newer failed one nor the preview", d, err, ok1.ID)
	}
	if _, ok := app.Serving(); ok {
		t.Error("an app never woken says it serves")
	}
	// Once the release phase recorded a release, that one serves, even
	// when a newer deployment succeeded (a rollback's target is older).
	ok3 := sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "c3", Status: slipway.StatusSucceeded, Image: "r/web:c3", Digest: "sha256:3"})
	if err := store.SetRelease(t.Context(), "web", ok1.ID); err != nil {
		t.Fatal(err)
	}
	if d, err := app.(*projectApp).currentRelease(t.Context()); err != nil || d.ID != ok1.ID {
		t.Errorf("current release = %v, %v; want the recorded release %s, not %s", d, err, ok1.ID, ok3.ID)
	}
	// The project's own idle timeout and stop-after win over the server's.
	if _, err := store.SetAppSettings(t.Context(), "web", slipway.AppSettings{IdleTimeout: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	a := app.(*projectApp)
	if _, err := a.currentRelease(t.Context()); err != nil || time.Duration(a.idle.Load()) != 90*time.Second || time.Duration(a.stopAfter.Load()) != time.Hour {
		t.Errorf("timers: idle %v, stop after %v (%v); want the project's 1m30s and the server's 1h", time.Duration(a.idle.Load()), time.Duration(a.stopAfter.Load()), err)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := parseTrustedProxies([]string{"10.0.0.5", " 192.168.1.0/24", "::1", "10.1.2.3/8"})
	want := []string{"10.0.0.5/32", "192.168.1.0/24", "::1/128", "10.0.0.0/8"}
	if err != nil || len(got) != len(want) {
		t.Fatalf("parseTrustedProxies = %v, %v; want %v", got, err, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := parseTrustedProxies([]string{"proxy.example"}); err == nil || !strings.Contains(err.Error(), "--apps-trusted-proxy \"proxy.example\"") {
		t.Errorf("a host name: %v, want an error naming the flag and value", err)
	}
}
