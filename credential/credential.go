// Package credential issues and checks the credentials the control plane
// gives its builder machines and its own clients for the internal services
// (NATS, Temporal, the registry).
//
// A credential is stateless: it names its service (Kind), the project it
// is for ("" for the server's own) and when it expires, and carries an
// HMAC-SHA256 of that under the server's key (a file in the data
// directory). Every service that checks callers verifies it with the same
// key, so a credential survives a server restart (running agents keep
// working) and needs no database look-up. A credential of one kind is
// worthless for another service.
//
// The machine provider issues a machine's credentials at each wake and
// hands them to the agent in its 0600 configuration file
// (builder.AgentConfig.Credentials), never in argv or the environment.
package credential

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Kind is the service a credential is for.
type Kind string

const (
	// NATS authenticates a client of the embedded NATS server.
	NATS Kind = "nats"
	// Temporal authenticates a caller of the embedded Temporal frontend.
	Temporal Kind = "temporal"
	// Registry authenticates a client of the embedded registry.
	Registry Kind = "registry"
)

// Prefix starts every credential, so that one is easy to recognise (and
// to mask) in logs.
const Prefix = "slwc1."

// KeyFile is the key's file name in the data directory.
const KeyFile = "credential.key"

// DefaultAgentTTL is how long a machine's credentials stay valid after its
// wake. An agent sleeps after a few idle seconds, so it wakes (and gets
// new ones) far more often than this.
const DefaultAgentTTL = 24 * time.Hour

// Claims is what a valid credential says.
type Claims struct {
	// Kind is the service it is for.
	Kind Kind `json:"k"`
	// Project is the project whose machine holds it; "" is the server.
	Project string `json:"p,omitempty"`
	// Expires is when it stops being valid; zero never (the server's own).
	Expires int64 `json:"e,omitempty"`
	// Nonce makes every credential issued distinct.
	Nonce string `json:"n"`
}

// Server reports whether the credential is the server's own.
func (c Claims) Server() bool { return c.Project == "" }

// ErrInvalid is returned by Verify for a credential that is malformed,
// forged, expired or of another kind.
var ErrInvalid = errors.New("invalid credential")

// Issuer issues and verifies credentials with one key.
type Issuer struct {
	key []byte
	now func() time.Time
}

// New returns an Issuer with key (at least 32 bytes).
func New(key []byte) (*Issuer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("credential key: %d bytes, want at least 32", len(key))
	}
	return &Issuer{key: append([]byte(nil), key...), now: time.Now}, nil
}

// Load reads the key from path, creating it (32 random bytes, mode 0600)
// if it does not exist, and returns an Issuer with it.
func Load(path string) (*Issuer, error) {
	key, err := ReadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	return New(key)
}

// ReadKeyFile reads the base64 key at path, creating it (32 random bytes,
// base64, mode 0600) if it does not exist, and returns its bytes. Of two
// servers racing on one data directory, one writes the key and the other
// fails (O_EXCL): never two keys. The server keeps its other keys (the
// payload codec's) the same way.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: not base64: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err2 := f.Sync(); err == nil {
		err = err2
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return key, nil
}

// Agent issues a credential of kind for the machine of project, valid for
// ttl (DefaultAgentTTL if ttl ≤ 0).
func (i *Issuer) Agent(kind Kind, project string, ttl time.Duration) (string, error) {
	if project == "" {
		return "", errors.New("credential: an agent credential needs a project")
	}
	if ttl <= 0 {
		ttl = DefaultAgentTTL
	}
	return i.issue(Claims{Kind: kind, Project: project, Expires: i.now().Add(ttl).Unix()})
}

// Server issues a credential of kind for the server's own clients; it does
// not expire (it lives in the server's memory only).
func (i *Issuer) Server(kind Kind) (string, error) {
	return i.issue(Claims{Kind: kind})
}

func (i *Issuer) issue(c Claims) (string, error) {
	n := make([]byte, 12)
	if _, err := rand.Read(n); err != nil {
		return "", fmt.Errorf("credential: %w", err)
	}
	c.Nonce = base64.RawURLEncoding.EncodeToString(n)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	body := Prefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(i.mac(body)), nil
}

func (i *Issuer) mac(body string) []byte {
	m := hmac.New(sha256.New, i.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Verify checks token and returns its claims if it is a valid, unexpired
// credential of kind; otherwise ErrInvalid (wrapped with why).
func (i *Issuer) Verify(kind Kind, token string) (Claims, error) {
	if !strings.HasPrefix(token, Prefix) || len(token) > 1024 {
		return Claims{}, ErrInvalid
	}
	dot := strings.LastIndexByte(token, '.')
	if dot <= len(Prefix) {
		return Claims{}, ErrInvalid
	}
	body, sig := token[:dot], token[dot+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, i.mac(body)) {
		return Claims{}, ErrInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(Prefix):])
	if err != nil {
		return Claims{}, ErrInvalid
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, ErrInvalid
	}
	if c.Kind != kind {
		return Claims{}, fmt.Errorf("%w: a %s credential, not %s", ErrInvalid, c.Kind, kind)
	}
	if c.Expires != 0 && i.now().Unix() >= c.Expires {
		return Claims{}, fmt.Errorf("%w: expired", ErrInvalid)
	}
	return c, nil
}
