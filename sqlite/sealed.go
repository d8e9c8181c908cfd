package sqlite

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway"
)

// sealedKind is one kind of a project's named, sealed values: build
// secrets (project_secrets) or runtime environment variables
// (project_env). Each kind has its own key, derived from secrets.key, so
// a value sealed as one kind does not open as the other.
type sealedKind struct {
	table   string // its table: project, name, sealed, updated_at
	purpose string // the subkey's purpose
	noun    string // one value, in messages: "secret"
	plural  string // the project's values, in messages: "secrets"
}

var (
	buildSecrets = sealedKind{"project_secrets", "secret values", "secret", "secrets"}
	runtimeEnv   = sealedKind{"project_env", "runtime environment values", "environment variable", "environment"}
)

func (k sealedKind) aead(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(subkey(key, k.purpose))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func secretAD(project, name string) []byte { return []byte(project + "\x00" + name) }

// seal encrypts value as project's name of kind k, creating the key if
// need be: nonce || ciphertext.
func (db *DB) seal(k sealedKind, project, name string, value []byte) ([]byte, error) {
	key, err := db.secretsKey(true)
	if err != nil {
		return nil, err
	}
	aead, err := k.aead(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, value, secretAD(project, name)), nil
}

// deleteSealed removes project's name of kind k and returns when it was
// last set, or ENOTFOUND.
func (db *DB) deleteSealed(ctx context.Context, k sealedKind, project, name string) (time.Time, error) {
	var updated string
	err := db.write.QueryRowContext(ctx, `DELETE FROM `+k.table+` WHERE project = ? AND name = ? RETURNING updated_at`, project, name).Scan(&updated)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, slipway.Errorf(slipway.ENOTFOUND, "project %q has no %s %q", project, k.noun, name)
	} else if err != nil {
		return time.Time{}, fmt.Errorf("delete %s %s of %s: %w", k.noun, name, project, err)
	}
	return parseTime(updated)
}

// listSealed calls fn with the name and time set of each of project's
// values of kind k, by name. An unknown project is ENOTFOUND.
func (db *DB) listSealed(ctx context.Context, k sealedKind, project string, fn func(name string, updated time.Time)) error {
	if _, err := db.Project(ctx, project); err != nil {
		return err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT name, updated_at FROM `+k.table+` WHERE project = ? ORDER BY name`, project)
	if err != nil {
		return fmt.Errorf("list %s of %s: %w", k.plural, project, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, updated string
		if err := rows.Scan(&name, &updated); err != nil {
			return fmt.Errorf("list %s of %s: %w", k.plural, project, err)
		}
		t, err := parseTime(updated)
		if err != nil {
			return err
		}
		fn(name, t)
	}
	return rows.Err()
}

// openSealed calls fn with each of project's values of kind k, decrypted,
// by name, and the secrets key. A value that does not open (the key file
// replaced) is EINTERNAL naming it.
func (db *DB) openSealed(ctx context.Context, k sealedKind, project string, fn func(name string, value, key []byte)) error {
	rows, err := db.read.QueryContext(ctx, `SELECT name, sealed FROM `+k.table+` WHERE project = ? ORDER BY name`, project)
	if err != nil {
		return fmt.Errorf("read %s of %s: %w", k.plural, project, err)
	}
	defer rows.Close()
	var aead cipher.AEAD
	var key []byte
	for rows.Next() {
		var name string
		var sealed []byte
		if err := rows.Scan(&name, &sealed); err != nil {
			return fmt.Errorf("read %s of %s: %w", k.plural, project, err)
		}
		if aead == nil {
			if key, err = db.secretsKey(false); err != nil {
				return fmt.Errorf("%s of %s cannot be decrypted: %w", k.plural, project, err)
			}
			if aead, err = k.aead(key); err != nil {
				return err
			}
		}
		n := aead.NonceSize()
		var value []byte
		if len(sealed) > n {
			value, err = aead.Open(nil, sealed[:n], sealed[n:], secretAD(project, name))
		}
		if len(sealed) <= n || err != nil {
			return slipway.Errorf(slipway.EINTERNAL, "%s %s of %s cannot be decrypted with the key in %s (was the key file replaced?): set it again", k.noun, name, project, SecretsKeyFile)
		}
		fn(name, value, key)
	}
	return rows.Err()
}
