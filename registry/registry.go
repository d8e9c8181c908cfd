// Package registry embeds the CNCF distribution registry as an http.Handler
// that serves the OCI distribution API under /v2/, storing blobs and
// manifests in a directory.
//
// It is the default registry the builder agents push to. It only adds an
// access check in front of distribution: every request, from loopback or
// not, must present a credential (the password of HTTP basic auth, any
// user name, or a bearer token), which Config.Authenticate turns into the
// Access it grants; each request is parsed with distribution's own router
// into a repository and an Action (access.go). It must not know about
// projects, deployments or builds: whose credential grants what is the
// caller's business.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

// Config configures a Registry.
type Config struct {
	// RootDir is the filesystem storage root. It is created if missing.
	RootDir string
	// Authenticate returns what the credential secret (a basic-auth
	// password or a bearer token, never empty) may do, or an error if it
	// is no valid credential (the client then gets 401). Required.
	Authenticate func(ctx context.Context, secret string) (*Access, error)
	// Logger receives the registry's own messages and distribution's
	// warnings and errors. Default: slog.Default().
	Logger *slog.Logger
	// UploadPurgeAge is how old an abandoned blob upload must be before it
	// is removed. Default: 24h.
	UploadPurgeAge time.Duration
	// UploadPurgeInterval is how often abandoned uploads are looked for.
	// Default: 1h.
	UploadPurgeInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.UploadPurgeAge <= 0 {
		c.UploadPurgeAge = 24 * time.Hour
	}
	if c.UploadPurgeInterval <= 0 {
		c.UploadPurgeInterval = time.Hour
	}
}

// Registry is an http.Handler serving the OCI distribution API at /v2/.
// It is safe for concurrent use.
type Registry struct {
	cfg  Config
	app  *handlers.App
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New creates the storage directory and a registry serving from it. The
// background upload purger runs until ctx is done or Close is called.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	cfg.setDefaults()
	if cfg.RootDir == "" {
		return nil, errors.New("registry: RootDir is required")
	}
	if cfg.Authenticate == nil {
		return nil, errors.New("registry: Authenticate is required")
	}
	if err := os.MkdirAll(cfg.RootDir, 0o755); err != nil {
		return nil, fmt.Errorf("registry: create storage root: %w", err)
	}
	quietLogrus(cfg.Logger)

	secret, err := httpSecret(cfg.RootDir)
	if err != nil {
		return nil, err
	}

	conf := &configuration.Configuration{}
	conf.Version = configuration.CurrentVersion
	conf.Log.Level = "warn"
	conf.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": cfg.RootDir},
		"delete":     configuration.Parameters{"enabled": true},
		"redirect":   configuration.Parameters{"disable": true},
		"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		// distribution's own purger sleeps in a goroutine that never ends;
		// ours below stops with ctx.
		"maintenance": configuration.Parameters{
			"uploadpurging": map[interface{}]interface{}{"enabled": false},
		},
	}
	conf.HTTP.Secret = secret

	// The app keeps its context for as long as it serves; only the purger
	// stops with ctx.
	appCtx := context.WithoutCancel(ctx)
	var app *handlers.App
	if err := func() (err error) {
		// NewApp reports configuration problems by panicking.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("registry: %v", r)
			}
		}()
		app = handlers.NewApp(appCtx, conf)
		return nil
	}(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	r := &Registry{cfg: cfg, app: app, stop: cancel}
	r.wg.Go(func() { r.purgeUploads(ctx) })
	return r, nil
}

// Close stops the background work. It is safe to call more than once; the
// handler keeps serving requests afterwards.
func (r *Registry) Close() error {
	r.stop()
	r.wg.Wait()
	return nil
}

// purgeUploads removes abandoned uploads until ctx is done.
func (r *Registry) purgeUploads(ctx context.Context) {
	drv := filesystem.New(filesystem.DriverParameters{
		RootDirectory: r.cfg.RootDir,
		MaxThreads:    100,
	})
	t := time.NewTicker(r.cfg.UploadPurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		deleted, errs := storage.PurgeUploads(ctx, drv, time.Now().Add(-r.cfg.UploadPurgeAge), true)
		if len(deleted) > 0 || len(errs) > 0 {
			r.cfg.Logger.Info("registry: purged abandoned uploads", "deleted", len(deleted), "errors", len(errs))
		}
	}
}

// httpSecret returns the secret distribution signs upload state with. It is
// kept in the storage root so an upload survives a restart.
func httpSecret(root string) (string, error) {
	p := filepath.Join(root, ".http-secret")
	if b, err := os.ReadFile(p); err == nil && len(b) >= 32 {
		return string(b), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("registry: http secret: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(buf)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		return "", fmt.Errorf("registry: write http secret: %w", err)
	}
	return s, nil
}

var logrusOnce sync.Once

// quietLogrus turns distribution's logrus output (one line per request at
// info level) down to warnings and routes them to logger. logrus is a
// process-wide logger, so the first Registry's logger wins.
func quietLogrus(logger *slog.Logger) {
	logrusOnce.Do(func() {
		std := logrus.StandardLogger()
		if std.GetLevel() > logrus.WarnLevel {
			std.SetLevel(logrus.WarnLevel)
		}
		std.SetOutput(discard{})
		std.AddHook(&slogHook{logger: logger})
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// slogHook forwards logrus entries to slog.
type slogHook struct{ logger *slog.Logger }

func (h *slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelInfo
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	case e.Level >= logrus.DebugLevel:
		level = slog.LevelDebug
	}
	// distribution logs every 4xx answer (a HEAD for a blob the client is
	// about to upload, say) as an error: those are the client's business.
	if status, ok := e.Data["http.response.status"].(int); ok && status < 500 {
		level = slog.LevelDebug
	}
	if !h.logger.Enabled(context.Background(), level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("component", "registry"))
	for k, v := range e.Data {
		if k == "go.version" {
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	h.logger.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}
