package slipway

import (
	"context"
	"regexp"
	"time"
	"unicode/utf8"
)

// Secret is a project's build secret as users see it: its name and when it
// was last set. Its value is write-only: no listing or API answer carries
// it.
type Secret struct {
	Project   string    `json:"project"`
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// SecretValue is a build secret with its value, for the builder only.
type SecretValue struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
	// Digest identifies the value without revealing it (a keyed hash), so
	// that a build whose secrets changed is not taken for an identical
	// earlier one.
	Digest string `json:"digest"`
}

// SecretStore keeps projects' build secrets, encrypted at rest.
// Implementations are safe for concurrent use.
type SecretStore interface {
	// SetSecret creates or replaces a project's secret. An unknown project
	// is ENOTFOUND; a bad name or value is EINVALID.
	SetSecret(ctx context.Context, project, name string, value []byte) (*Secret, error)
	// DeleteSecret removes a project's secret and returns its record, or
	// ENOTFOUND.
	DeleteSecret(ctx context.Context, project, name string) (*Secret, error)
	// Secrets lists a project's secrets by name, without values.
	Secrets(ctx context.Context, project string) ([]*Secret, error)
	// SecretValues returns a project's secrets with their values, by name.
	SecretValues(ctx context.Context, project string) ([]SecretValue, error)
	// BuildToken returns the token the agent of a deployment shows to fetch
	// its project's secrets (a keyed hash of the deployment id: it is
	// derived again to check it, and useless for any other deployment).
	BuildToken(deployment string) (string, error)
}

// MaxSecretBytes bounds one secret's value.
const MaxSecretBytes = 64 << 10

// MinSecretBytes is the shortest value a secret may have: shorter values
// could not be masked in logs without masking ordinary text everywhere (see
// redact.MinSecretLen).
const MinSecretBytes = 4

// secretNameRE is what podman build --secret id=NAME accepts and what makes
// a file name under /run/secrets: no "," or "=" (the flag's separators), no
// "/", and not "." or "..".
var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidateSecretName checks a build secret's name, which a Dockerfile uses
// as RUN --mount=type=secret,id=NAME.
func ValidateSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid secret name %q: use 1-128 letters, digits, '_', '.' and '-', starting with a letter, digit or '_' (it is the id in RUN --mount=type=secret,id=NAME)", name)
	}
	return nil
}

// ValidateSecret checks a build secret's name (ValidateSecretName), then
// its value (ValidateSecretValue).
func ValidateSecret(name string, value []byte) error {
	if err := ValidateSecretName(name); err != nil {
		return err
	}
	return ValidateSecretValue(name, value)
}

// ValidateSecretValue checks a build secret's value: MinSecretBytes to
// MaxSecretBytes of UTF-8 text.
func ValidateSecretValue(name string, value []byte) error {
	switch {
	case len(value) < MinSecretBytes:
		return Errorf(EINVALID, "secret %s is %d bytes: a secret must be at least %d bytes, or it could not be masked in build logs", name, len(value), MinSecretBytes)
	case len(value) > MaxSecretBytes:
		return Errorf(ETOOLARGE, "secret %s is %d bytes: the limit is %d bytes (64 KiB)", name, len(value), MaxSecretBytes)
	case !utf8.Valid(value):
		return Errorf(EINVALID, "secret %s is not UTF-8 text: encode binary values (base64, say) and decode them in the RUN step", name)
	}
	return nil
}
