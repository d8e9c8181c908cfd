package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
)

// storedWebhookSecret returns project's webhook_secret column as stored.
func storedWebhookSecret(t *testing.T, db *DB, project string) string {
	t.Helper()
	var s string
	if err := db.read.QueryRowContext(t.Context(), `SELECT webhook_secret FROM projects WHERE name = ?`, project).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWebhookSecretSealed: a project's webhook secret is stored sealed
// (the column holds no trace of it) and every way of reading the project
// (by name, in the list, by repository, by webhook URL id) decrypts it;
// a sealed value moved to another project, or read with another key, does
// not open: the project reads with no secret, which verifies no delivery.
func TestWebhookSecretSealed(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	const secret = "whsec-0123456789abcdef-very-secret"
	p := &slipway.Project{Name: "web", Repo: "https://github.com/acme/web", Branch: "main", Dockerfile: "Dockerfile", Context: ".", WebhookSecret: secret}
	if err := db.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	stored := storedWebhookSecret(t, db, "web")
	if !strings.HasPrefix(stored, sealedPrefix) || strings.Contains(stored, "very-secret") {
		t.Errorf("stored webhook secret = %q, want it sealed", stored)
	}
	byName, err := db.Project(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	list, err := db.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRepo, err := db.ProjectsByRepo(ctx, []string{"https://github.com/acme/web.git"})
	if err != nil {
		t.Fatal(err)
	}
	byHook, err := db.ProjectByHookID(ctx, p.HookID)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*slipway.Project{byName, list[0], byRepo[0], byHook} {
		if got.WebhookSecret != secret {
			t.Errorf("read back webhook secret %q, want %q", got.WebhookSecret, secret)
		}
	}
	// The sealed value is bound to its project: moved to another, it does
	// not open.
	if err := db.CreateProject(ctx, &slipway.Project{Name: "api", Repo: "file:///api"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE projects SET webhook_secret = ? WHERE name = 'api'`, stored); err != nil {
		t.Fatal(err)
	}
	if p, err := db.Project(ctx, "api"); err != nil || p.WebhookSecret != "" {
		t.Errorf("a sealed secret moved to another project: %+v, %v; want the project with no secret (none verifies)", p, err)
	}
	// So is a database whose key file was replaced: projects stay readable.
	keyPath := filepath.Join(filepath.Dir(db.path), SecretsKeyFile)
	if err := os.WriteFile(keyPath, make([]byte, secretsKeyLen), 0o600); err != nil {
		t.Fatal(err)
	}
	db.key = nil
	if p, err := db.Project(ctx, "web"); err != nil || p.WebhookSecret != "" {
		t.Errorf("with another key: %+v, %v; want the project with no secret", p, err)
	}
}

// TestWebhookSecretsSealedByMigration: webhook secrets stored in clear by
// an older Slipway are sealed in place when the file is upgraded, and
// still verify deliveries (read back as they were).
func TestWebhookSecretsSealedByMigration(t *testing.T) {
	ctx := t.Context()
	old, path := openAtVersion(t, 13)
	secrets := map[string]string{"web": "plain-secret-of-web", "api": "plain-secret-of-api", "none": ""}
	for name, secret := range secrets {
		if _, err := old.ExecContext(ctx, `INSERT INTO projects (name, repo, repo_key, created_at, webhook_secret, hook_id) VALUES (?, 'file:///r', 'file:///r', '2025-01-01T00:00:00.000000000Z', ?, ?)`, name, secret, name); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a version 13 file: %v", err)
	}
	defer db.Close()
	for name, secret := range secrets {
		stored := storedWebhookSecret(t, db, name)
		if secret != "" && (!strings.HasPrefix(stored, sealedPrefix) || strings.Contains(stored, "plain-secret")) {
			t.Errorf("project %s after upgrade: stored %q, want it sealed", name, stored)
		}
		p, err := db.Project(ctx, name)
		if err != nil || p.WebhookSecret != secret {
			t.Errorf("project %s after upgrade: %v, %v; want secret %q", name, p, err, secret)
		}
	}
	if fi, err := os.Stat(filepath.Join(filepath.Dir(path), SecretsKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file after sealing: %v, %v; want mode 0600", fi, err)
	}
}
