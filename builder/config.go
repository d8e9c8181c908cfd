package builder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AgentConfigVersion is the version of AgentConfig this code writes and
// reads. Bump it when a field changes meaning or a required one is added;
// an agent refuses a file of another version rather than guess.
const AgentConfigVersion = 1

// Defaults of AgentConfig's fields, filled in by WithDefaults.
const (
	DefaultTemporalNamespace = "default"
	DefaultIdleTimeout       = 3 * time.Second
	DefaultStartTimeout      = time.Minute
	DefaultKeepImages        = 5
	DefaultResetThreshold    = 0.75
)

// AgentConfig is the agent's whole configuration: the machine provider
// writes it as one JSON file on the volume (Layout.Config, WriteAgentConfig)
// and starts the agent with `agent --config FILE`; the agent reads it with
// ReadAgentConfig. Every setting the server has for its agents travels in
// it, so none can be lost on the way. Zero values mean the default.
//
// In the file, durations are strings such as "3s" (time.ParseDuration).
type AgentConfig struct {
	// Version is AgentConfigVersion; WriteAgentConfig sets it.
	Version int `json:"version"`
	// Project is the project whose queue (Queue) the agent polls.
	// Required; set by the machine provider.
	Project string `json:"project"`
	// VolumeDir is the machine's volume (see Layout). Required; set by the
	// machine provider.
	VolumeDir string `json:"volumeDir"`
	// TemporalHostPort is the Temporal frontend. Required.
	TemporalHostPort string `json:"temporalHostPort"`
	// TemporalNamespace is the Temporal namespace; default
	// DefaultTemporalNamespace.
	TemporalNamespace string `json:"temporalNamespace"`
	// NATSURL is where build output is streamed, progress announced and
	// build secrets fetched. Empty: output only goes to the agent's
	// stdout, and a project with build secrets cannot build.
	NATSURL string `json:"natsURL"`
	// Registry is the host[:port] of the registry images are pushed to;
	// Credentials.Registry is for it (and sent to no other host).
	Registry string `json:"registry"`
	// RegistryTLSVerify requires TLS with verified certificates when the
	// agent pulls base images, pushes and labels images: the server sets
	// it for an external registry unless --registry-insecure; the
	// embedded registry speaks plain HTTP on loopback.
	RegistryTLSVerify bool `json:"registryTLSVerify"`
	// IdleTimeout is how long the agent keeps polling after its last task
	// before it exits 0 (the machine sleeps); default DefaultIdleTimeout.
	IdleTimeout time.Duration `json:"idleTimeout"`
	// StartTimeout is how long a freshly started agent waits for its first
	// task; default DefaultStartTimeout.
	StartTimeout time.Duration `json:"startTimeout"`
	// KeepImages is how many of the project's latest successful images
	// the machine keeps (so a rollback never rebuilds); default
	// DefaultKeepImages.
	KeepImages int `json:"keepImages"`
	// ResetThreshold is the fraction of the volume's filesystem in use
	// past which the builder's storage is reset after a build; default
	// DefaultResetThreshold.
	ResetThreshold float64 `json:"resetThreshold"`
	// NoReuse turns off reusing the image of an earlier build with
	// identical inputs and starting stages from the recorded images of
	// unchanged steps (every deployment then runs the whole Dockerfile,
	// with the builder's layer cache).
	NoReuse bool `json:"noReuse"`
	// Buildah is the buildah executable; empty: buildah.DefaultBinary.
	Buildah string `json:"buildah"`
	// Runtime is the OCI runtime of RUN steps (slipway-runc); empty:
	// buildah.DefaultRuntime.
	Runtime string `json:"runtime"`
	// Runc is the runc executable; empty: buildah.DefaultRunc from PATH.
	Runc string `json:"runc"`
	// Credentials are this wake's: the machine provider issues them at
	// each start of the agent (they are never in argv or the
	// environment).
	Credentials AgentCredentials `json:"credentials"`
}

// AgentCredentials are what a machine presents to the control plane's
// internal services; each is only good for its own project (see package
// credential). Empty: the service asks for nothing (an external one set up
// that way).
type AgentCredentials struct {
	// NATS is the token of the agent's connections to the embedded NATS.
	NATS string `json:"nats,omitempty"`
	// NATSCreds is, with an external NATS, the contents of the NATS
	// credentials file (JWT and nkey seed) the agent's connections
	// authenticate with (`slipway server --nats-agent-creds`).
	NATSCreds string `json:"natsCreds,omitempty"`
	// Temporal is the agent's bearer token for the Temporal frontend
	// (`authorization: Bearer`): for the embedded Temporal, a credential
	// of the agent's project; for an external one, its API key, if it
	// asks for one.
	Temporal string `json:"temporal,omitempty"`
	// TemporalTLS is how to speak TLS to an external Temporal; nil: plain
	// gRPC (the embedded one, on loopback).
	TemporalTLS *TemporalTLS `json:"temporalTLS,omitempty"`
	// Registry is the password (any user name) for the embedded registry
	// at AgentConfig.Registry: push and pull of the project's repository,
	// pull of base/*; with an external registry, the password of the
	// server's --registry-auth-file login, or empty.
	Registry string `json:"registry,omitempty"`
	// RegistryUser is the user name of an external registry's login;
	// empty for the embedded registry, which takes any.
	RegistryUser string `json:"registryUser,omitempty"`
	// PayloadKey is the key of the payload codec that encrypts workflow
	// payloads in Temporal's history (base64).
	PayloadKey string `json:"payloadKey,omitempty"`
}

// TemporalTLS is the TLS of a connection to an external Temporal, as PEM
// (the file it travels in is the agent's own, mode 0600).
type TemporalTLS struct {
	// CertPEM and KeyPEM are the client certificate and its key, for a
	// Temporal that asks for one (mTLS); empty: none.
	CertPEM string `json:"certPEM,omitempty"`
	KeyPEM  string `json:"keyPEM,omitempty"`
	// CAPEM are the CA certificates the server's certificate is checked
	// against; empty: the system's.
	CAPEM string `json:"caPEM,omitempty"`
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c AgentConfig) WithDefaults() AgentConfig {
	if c.TemporalNamespace == "" {
		c.TemporalNamespace = DefaultTemporalNamespace
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.KeepImages <= 0 {
		c.KeepImages = DefaultKeepImages
	}
	if c.ResetThreshold <= 0 {
		c.ResetThreshold = DefaultResetThreshold
	}
	return c
}

// Validate says what is missing or wrong in c (its version aside, which
// ReadAgentConfig checks).
func (c AgentConfig) Validate() error {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"project", c.Project}, {"volumeDir", c.VolumeDir}, {"temporalHostPort", c.TemporalHostPort},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("agent configuration: %s required", strings.Join(missing, ", "))
	}
	if !filepath.IsAbs(c.VolumeDir) {
		return fmt.Errorf("agent configuration: volumeDir %q is not an absolute path", c.VolumeDir)
	}
	return nil
}

// agentConfigFile is AgentConfig as the file holds it: durations as
// strings. The embedded struct brings every other field, so a field added
// to AgentConfig travels without a change here.
type agentConfigFile struct {
	plainAgentConfig
	IdleTimeout  string `json:"idleTimeout"`
	StartTimeout string `json:"startTimeout"`
}

// plainAgentConfig is AgentConfig without its JSON methods.
type plainAgentConfig AgentConfig

// MarshalJSON writes c with its durations as strings ("3s").
func (c AgentConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(agentConfigFile{
		plainAgentConfig: plainAgentConfig(c),
		IdleTimeout:      c.IdleTimeout.String(),
		StartTimeout:     c.StartTimeout.String(),
	})
}

// UnmarshalJSON reads what MarshalJSON wrote. It refuses a field it does
// not know: a setting the agent would silently drop.
func (c *AgentConfig) UnmarshalJSON(b []byte) error {
	var f agentConfigFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return err
	}
	*c = AgentConfig(f.plainAgentConfig)
	for _, d := range []struct {
		name string
		s    string
		to   *time.Duration
	}{{"idleTimeout", f.IdleTimeout, &c.IdleTimeout}, {"startTimeout", f.StartTimeout, &c.StartTimeout}} {
		if d.s == "" {
			*d.to = 0
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.to = v
	}
	return nil
}

// WriteAgentConfig writes c, at AgentConfigVersion, to path: a JSON file of
// mode 0600 owned by uid:gid (-1 keeps the writer's), replaced whole. It
// refuses a configuration the agent would refuse (Validate). The file is
// written under a new name in path's directory and renamed into place, so
// a link planted at path (the volume may belong to the builder user) is
// replaced, never followed.
func WriteAgentConfig(path string, c AgentConfig, uid, gid int) (err error) {
	c.Version = AgentConfigVersion
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write agent configuration: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write agent configuration: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write agent configuration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write agent configuration: %w", err)
	}
	if uid != -1 || gid != -1 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return fmt.Errorf("write agent configuration: %w", err)
		}
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write agent configuration: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write agent configuration: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write agent configuration: %w", err)
	}
	return nil
}

// ReadAgentConfig reads the agent's configuration from path and checks it
// (Validate): a file of another version, with a field this agent does not
// know, or without a required field is refused with an error saying so.
// Defaults are not filled in (WithDefaults).
func ReadAgentConfig(path string) (AgentConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return AgentConfig{}, fmt.Errorf("read agent configuration: %w", err)
	}
	// The version first: a file of another version may not parse as this
	// one, and its version is the error worth showing.
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return AgentConfig{}, fmt.Errorf("read agent configuration %s: %w", path, err)
	}
	switch v.Version {
	case AgentConfigVersion:
	case 0:
		return AgentConfig{}, fmt.Errorf("read agent configuration %s: it has no version: this agent reads version %d", path, AgentConfigVersion)
	default:
		return AgentConfig{}, fmt.Errorf("read agent configuration %s: version %d: this agent reads version %d only (are the server and slipway-agent from the same release?)",
			path, v.Version, AgentConfigVersion)
	}
	var c AgentConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return AgentConfig{}, fmt.Errorf("read agent configuration %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return AgentConfig{}, fmt.Errorf("read agent configuration %s: %w", path, err)
	}
	return c, nil
}
