package sqlite

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/slipway-ci/slipway"
)

// Webhook secrets are stored sealed like build secrets: AES-256-GCM under
// a key derived from the secrets key (SecretsKeyFile), with the project's
// name as additional data, as sealedPrefix and the base64 of nonce and
// ciphertext. A copy of the database without the key file reveals no
// webhook secret. The empty secret is stored as it is.
const sealedPrefix = "sealed1:"

func webhookAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(subkey(key, "webhook secrets"))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func webhookAD(project string) []byte { return []byte("webhook\x00" + project) }

// sealWebhookSecret returns secret as stored for project.
func sealWebhookSecret(key []byte, project, secret string) (string, error) {
	if secret == "" {
		return "", nil
	}
	aead, err := webhookAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := aead.Seal(nonce, nonce, []byte(secret), webhookAD(project))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// sealedWebhookSecret is sealWebhookSecret with the database's key,
// created if there is none yet.
func (db *DB) sealedWebhookSecret(project, secret string) (string, error) {
	if secret == "" {
		return "", nil
	}
	key, err := db.secretsKey(true)
	if err != nil {
		return "", fmt.Errorf("seal the webhook secret of %s: %w", project, err)
	}
	return sealWebhookSecret(key, project, secret)
}

// openWebhookSecret returns the webhook secret of p as stored: it
// decrypts p.WebhookSecret in place.
func (db *DB) openWebhookSecret(p *slipway.Project) error {
	stored := p.WebhookSecret
	if stored == "" {
		return nil
	}
	fail := slipway.Errorf(slipway.EINTERNAL, "the webhook secret of project %s cannot be decrypted with the key in %s (was the key file replaced?): remove the project and add it again", p.Name, SecretsKeyFile)
	b64, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return fail
	}
	sealed, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return fail
	}
	key, err := db.secretsKey(false)
	if err != nil {
		return fmt.Errorf("webhook secret of %s: %w", p.Name, err)
	}
	aead, err := webhookAEAD(key)
	if err != nil {
		return err
	}
	n := aead.NonceSize()
	if len(sealed) <= n {
		return fail
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], webhookAD(p.Name))
	if err != nil {
		return fail
	}
	p.WebhookSecret = string(plain)
	return nil
}

// sealWebhookSecretsSQL is the migration after which webhook secrets are
// stored sealed; its Go step, sealWebhookSecrets, seals those stored in
// clear before, in the same transaction.
const sealWebhookSecretsSQL = `
-- 14: webhook secrets are sealed (Go step sealWebhookSecrets).
SELECT 1;
`

// sealWebhookSecrets seals every webhook secret stored in clear, in place.
// The key is read (or created) only if there is one.
func sealWebhookSecrets(ctx context.Context, tx *sql.Tx, key func() ([]byte, error)) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, webhook_secret FROM projects WHERE webhook_secret != '' AND webhook_secret NOT LIKE 'sealed1:%'`)
	if err != nil {
		return fmt.Errorf("seal webhook secrets: %w", err)
	}
	clear := map[string]string{}
	for rows.Next() {
		var name, secret string
		if err := rows.Scan(&name, &secret); err != nil {
			rows.Close()
			return fmt.Errorf("seal webhook secrets: %w", err)
		}
		clear[name] = secret
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(clear) == 0 {
		return err
	}
	if key == nil {
		return errors.New("seal webhook secrets: no secrets key")
	}
	k, err := key()
	if err != nil {
		return fmt.Errorf("seal webhook secrets: %w", err)
	}
	for name, secret := range clear {
		sealed, err := sealWebhookSecret(k, name, secret)
		if err != nil {
			return fmt.Errorf("seal webhook secret of %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE projects SET webhook_secret = ? WHERE name = ?`, sealed, name); err != nil {
			return fmt.Errorf("seal webhook secret of %s: %w", name, err)
		}
	}
	return nil
}
