package server

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/payloadcodec"
)

// Every setting the server has for its agents reaches the agent: from the
// server's Config into the builder.AgentConfig the machine provider
// writes, through the file, to what the agent reads (the hop that once
// lost the registry's TLS setting).
func TestAgentConfigCarriesEverySetting(t *testing.T) {
	cfg := Config{
		TemporalNamespace: "ns",
		// An external registry is reached with verified TLS.
		Registry:       "registry.example.com:5000/team",
		KeepImages:     9,
		ResetThreshold: 0.6,
		NoReuse:        true,
	}
	cfg = cfg.WithDefaults()
	ac := agentConfig(cfg, "127.0.0.1:7233", "nats://127.0.0.1:4222", cfg.Registry)
	// Version, project, volume and the wake's credentials are the
	// provider's to set (agentCredentials, TestAgentCredentials).
	if zero := testenv.ZeroFields(ac); !slices.Equal(zero, []string{"Version", "Project", "VolumeDir", "Credentials"}) {
		t.Errorf("the server leaves %v of the agent's configuration unset; want only Version, Project, VolumeDir, Credentials", zero)
	}
	want := builder.AgentConfig{
		Version: builder.AgentConfigVersion, Project: "web", VolumeDir: "/data/volumes/web",
		TemporalHostPort: "127.0.0.1:7233", TemporalNamespace: "ns", NATSURL: "nats://127.0.0.1:4222",
		Registry: "registry.example.com:5000", RegistryTLSVerify: true, IdleTimeout: builder.DefaultIdleTimeout, StartTimeout: builder.DefaultStartTimeout,
		KeepImages: 9, ResetThreshold: 0.6, NoReuse: true,
		Buildah: buildah.DefaultBinary, Runtime: buildah.DefaultRuntime, Runc: buildah.DefaultRunc,
	}
	ac.Project, ac.VolumeDir = "web", "/data/volumes/web"
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := builder.WriteAgentConfig(path, ac, -1, -1); err != nil {
		t.Fatal(err)
	}
	got, err := builder.ReadAgentConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("the agent reads\n%+v\nwant\n%+v", got, want)
	}
}

// A server with no settings gives its agents what they had before the
// configuration file (as flags): the defaults.
func TestAgentConfigDefaults(t *testing.T) {
	var cfg Config
	cfg = cfg.WithDefaults()
	got := agentConfig(cfg, "t:1", "n:2", "127.0.0.1:8080")
	want := builder.AgentConfig{
		TemporalHostPort: "t:1", TemporalNamespace: "default", NATSURL: "n:2", Registry: "127.0.0.1:8080",
		IdleTimeout: 3 * time.Second, StartTimeout: time.Minute, KeepImages: 5, ResetThreshold: 0.75,
		Buildah: buildah.DefaultBinary, Runtime: buildah.DefaultRuntime, Runc: buildah.DefaultRunc,
	}
	if got != want {
		t.Errorf("agentConfig of a server's defaults =\n%+v\nwant\n%+v", got, want)
	}
}

// Each wake's credentials are the project's own, one per service.
func TestAgentCredentials(t *testing.T) {
	p, err := newParts(Config{DataDir: t.TempDir()}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.agentCredentials("web")
	if err != nil {
		t.Fatal(err)
	}
	for kind, tok := range map[credential.Kind]string{credential.NATS: c.NATS, credential.Temporal: c.Temporal, credential.Registry: c.Registry} {
		claims, err := p.creds.Verify(kind, tok)
		if err != nil || claims.Project != "web" {
			t.Errorf("%s credential: %+v, %v; want project web", kind, claims, err)
		}
	}
	if _, err := p.creds.Verify(credential.Temporal, c.NATS); err == nil {
		t.Error("the NATS credential is accepted by Temporal")
	}
}

// The payload codec's key is made once, 0600, in the data directory, and
// every agent gets it; an external Temporal's TLS and API key flags are
// refused with the embedded one.
func TestPayloadKey(t *testing.T) {
	dir := t.TempDir()
	p1, err := newParts(Config{DataDir: dir}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, payloadcodec.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("payload key file: %v, %v; want mode 0600", fi, err)
	}
	p2, err := newParts(Config{DataDir: dir}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p2.agentCredentials("web")
	if err != nil {
		t.Fatal(err)
	}
	if c.PayloadKey == "" || c.PayloadKey != p1.payloadKey || c.TemporalTLS != nil {
		t.Errorf("agent's payload key %q, TLS %v; want the first start's key %q and no TLS", c.PayloadKey, c.TemporalTLS, p1.payloadKey)
	}
	if _, err := newParts(Config{DataDir: dir, TemporalTLSCA: "/ca.pem"}.WithDefaults()); err == nil {
		t.Error("--temporal-tls-ca with the embedded Temporal: accepted")
	}
}

// An external Temporal's API key and TLS files reach every agent; a key
// alone turns TLS on (it never travels in clear).
func TestExternalTemporalSettings(t *testing.T) {
	dir := t.TempDir()
	keyFile, caFile := filepath.Join(dir, "key"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(keyFile, []byte("the-api-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, []byte("CA PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ca   string
		want builder.TemporalTLS
	}{{"API key alone", "", builder.TemporalTLS{}}, {"API key and CA", caFile, builder.TemporalTLS{CAPEM: "CA PEM"}}} {
		p, err := newParts(Config{DataDir: t.TempDir(), TemporalAddress: "temporal.example:7233", TemporalAPIKeyFile: keyFile, TemporalTLSCA: c.ca}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		ac, err := p.agentCredentials("web")
		if err != nil {
			t.Fatal(err)
		}
		if ac.Temporal != "the-api-key" || ac.TemporalTLS == nil || *ac.TemporalTLS != c.want {
			t.Errorf("%s: agent's Temporal credential %q, TLS %+v; want the API key and %+v", c.name, ac.Temporal, ac.TemporalTLS, c.want)
		}
	}
	p, err := newParts(Config{DataDir: t.TempDir(), TemporalAddress: "t:1", TemporalAPIKey: "key-as-a-value"}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if ac, err := p.agentCredentials("web"); err != nil || ac.Temporal != "key-as-a-value" || ac.TemporalTLS == nil {
		t.Errorf("--temporal-api-key: agent's Temporal credential %q, TLS %+v, %v; want the key, with TLS", ac.Temporal, ac.TemporalTLS, err)
	}
	if _, err := newParts(Config{DataDir: t.TempDir(), TemporalAddress: "t:1", TemporalAPIKey: "k", TemporalAPIKeyFile: keyFile}.WithDefaults()); err == nil {
		t.Error("--temporal-api-key with --temporal-api-key-file: accepted")
	}
	if _, err := newParts(Config{DataDir: t.TempDir(), TemporalAddress: "t:1", TemporalTLSCert: keyFile}.WithDefaults()); err == nil {
		t.Error("--temporal-tls-cert without --temporal-tls-key: accepted")
	}
}
