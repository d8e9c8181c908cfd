package sqlite

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-ci/slipway"
)

var _ slipway.SecretStore = (*DB)(nil)

// Build secrets are encrypted with AES-256-GCM (Go's crypto/aes and
// crypto/cipher) under a random 32-byte key kept in SecretsKeyFile beside
// the database file, mode 0600, created with the first secret. Each value
// is sealed with a random nonce and the project and name as additional
// data, so a sealed value cannot be moved to another secret. Digests and
// build tokens are HMAC-SHA256 under keys derived from the same key. A
// copy of the database without the key file reveals no secret; losing the
// key file loses the secrets (set them again).

// SecretsKeyFile is the key file's name, in the database file's directory.
const SecretsKeyFile = "secrets.key"

const secretsKeyLen = 32

// secretsKey returns the key, creating the key file if there is none.
func (db *DB) secretsKey(create bool) ([]byte, error) {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if db.key != nil {
		return db.key, nil
	}
	path := filepath.Join(filepath.Dir(db.path), SecretsKeyFile)
	key, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		key = make([]byte, secretsKeyLen)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			// Another process made it first.
			key, err = readKey(path)
		} else if err == nil {
			_, err = f.Write(key)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("secrets key %s: %w", path, err)
		}
	} else if err != nil {
		return nil, err
	}
	db.key = key
	return key, nil
}

// readKey reads the key file, refusing one others may read.
func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets key %s has mode %o: others may read it; make it 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if len(key) != secretsKeyLen {
		return nil, fmt.Errorf("secrets key %s is %d bytes, want %d", path, len(key), secretsKeyLen)
	}
	return key, nil
}

// subkey derives a key for one purpose from the secrets key.
func subkey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("slipway " + purpose))
	return m.Sum(nil)
}

func keyedHash(key []byte, purpose string, parts ...string) string {
	m := hmac.New(sha256.New, subkey(key, purpose))
	for _, p := range parts {
		fmt.Fprintf(m, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// SetSecret implements slipway.SecretStore.
func (db *DB) SetSecret(ctx context.Context, project, name string, value []byte) (*slipway.Secret, error) {
	if err := slipway.ValidateSecret(name, value); err != nil {
		return nil, err
	}
	if _, err := db.Project(ctx, project); err != nil {
		return nil, err
	}
	sealed, err := db.seal(buildSecrets, project, name, value)
	if err != nil {
		return nil, err
	}
	s := &slipway.Secret{Project: project, Name: name, UpdatedAt: db.now().UTC()}
	_, err = db.write.ExecContext(ctx, `INSERT INTO project_secrets (project, name, sealed, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (project, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
		project, name, sealed, formatTime(s.UpdatedAt))
	if isConstraint(err, codeConstraintForeignKey) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	} else if err != nil {
		return nil, fmt.Errorf("set secret %s of %s: %w", name, project, err)
	}
	return s, nil
}

// DeleteSecret implements slipway.SecretStore.
func (db *DB) DeleteSecret(ctx context.Context, project, name string) (*slipway.Secret, error) {
	t, err := db.deleteSealed(ctx, buildSecrets, project, name)
	if err != nil {
		return nil, err
	}
	return &slipway.Secret{Project: project, Name: name, UpdatedAt: t}, nil
}

// Secrets implements slipway.SecretStore.
func (db *DB) Secrets(ctx context.Context, project string) ([]*slipway.Secret, error) {
	out := []*slipway.Secret{}
	err := db.listSealed(ctx, buildSecrets, project, func(name string, updated time.Time) {
		out = append(out, &slipway.Secret{Project: project, Name: name, UpdatedAt: updated})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SecretValues implements slipway.SecretStore.
func (db *DB) SecretValues(ctx context.Context, project string) ([]slipway.SecretValue, error) {
	var out []slipway.SecretValue
	err := db.openSealed(ctx, buildSecrets, project, func(name string, value, key []byte) {
		out = append(out, slipway.SecretValue{Name: name, Value: value, Digest: keyedHash(key, "secret digest", project, name, string(value))})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BuildToken implements slipway.SecretStore.
func (db *DB) BuildToken(deployment string) (string, error) {
	key, err := db.secretsKey(true)
	if err != nil {
		return "", err
	}
	return keyedHash(key, "build token", deployment), nil
}
