package natsserver_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natsserver"
)

func TestServerPortAndDoubleShutdown(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	if port := logtest.PortOf(t, s.URL()); port <= 0 {
		t.Fatalf("URL() = %q, want the real port", s.URL())
	}
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), natslog.StreamName)
	if err != nil {
		t.Fatalf("stream after Start: %v", err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Storage != jetstream.FileStorage || cfg.MaxAge != natslog.DefaultMaxAge || cfg.Duplicates != natslog.DuplicateWindow {
		t.Errorf("stream config: storage %v, max age %v, duplicates %v", cfg.Storage, cfg.MaxAge, cfg.Duplicates)
	}
	if err := natslog.EnsureStream(t.Context(), js, 0); err != nil {
		t.Errorf("EnsureStream on an existing stream: %v", err)
	}
	nc.Close()
	s.Shutdown()
	s.Shutdown()
}

func TestServerPortInUse(t *testing.T) {
	s1 := logtest.StartServer(t, natsserver.Config{})
	port := logtest.PortOf(t, s1.URL())
	start := time.Now()
	s2, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Port: port, Credentials: logtest.Credentials})
	if err == nil {
		s2.Shutdown()
		t.Fatalf("second server on port %d started", port)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing on a busy port took %s", d)
	}
	t.Log(err)
}
