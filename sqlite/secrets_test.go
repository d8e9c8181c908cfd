package sqlite

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
)

func TestSecrets(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	const value = "plain-secret-value-9f2c"
	if _, err := db.SetSecret(ctx, "app", "npm_token", []byte(value)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetSecret(ctx, "app", "a.b-c", []byte("other value")); err != nil {
		t.Fatal(err)
	}
	list, err := db.Secrets(ctx, "app")
	if err != nil || len(list) != 2 || list[0].Name != "a.b-c" || list[1].Name != "npm_token" || list[1].UpdatedAt.IsZero() {
		t.Fatalf("Secrets = %+v, %v", list, err)
	}
	vals, err := db.SecretValues(ctx, "app")
	if err != nil || len(vals) != 2 || string(vals[1].Value) != value || len(vals[1].Digest) != 64 {
		t.Fatalf("SecretValues = %+v, %v", vals, err)
	}
	digest := vals[1].Digest
	if _, err := db.SetSecret(ctx, "app", "npm_token", []byte(value+"2")); err != nil {
		t.Fatal(err)
	}
	vals, _ = db.SecretValues(ctx, "app")
	if string(vals[1].Value) != value+"2" || vals[1].Digest == digest {
		t.Errorf("after replacing: %q digest %s (was %s)", vals[1].Value, vals[1].Digest, digest)
	}

	// The key file is private, and the database holds no value in clear.
	key := filepath.Join(filepath.Dir(path), SecretsKeyFile)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi, err)
	}
	db.Close()
	for _, f := range []string{path, path + "-wal"} {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("plain-secret-value")) || bytes.Contains(b, []byte("other value")) {
			t.Errorf("%s holds a secret value in clear", f)
		}
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if vals, err := db.SecretValues(ctx, "app"); err != nil || len(vals) != 2 || string(vals[1].Value) != value+"2" {
		t.Errorf("after reopening: %+v, %v", vals, err)
	}
	if tok, err := db.BuildToken("d-1"); err != nil || len(tok) != 64 {
		t.Errorf("BuildToken = %q, %v", tok, err)
	} else if tok2, _ := db.BuildToken("d-2"); tok2 == tok {
		t.Errorf("two deployments share a build token")
	}

	if s, err := db.DeleteSecret(ctx, "app", "a.b-c"); err != nil || s.Name != "a.b-c" {
		t.Errorf("DeleteSecret = %v, %v", s, err)
	}
	if _, err := db.DeleteSecret(ctx, "app", "a.b-c"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("deleting a missing secret: %v, want not_found", err)
	}

	for _, tc := range []struct {
		project, name, value, code, msg string
	}{
		{"app", "a,b", "value", slipway.EINVALID, "invalid secret name"},
		{"app", "a=b", "value", slipway.EINVALID, "invalid secret name"},
		{"app", "../x", "value", slipway.EINVALID, "invalid secret name"},
		{"app", ".", "value", slipway.EINVALID, "invalid secret name"},
		{"app", "", "value", slipway.EINVALID, "invalid secret name"},
		{"app", "x", "abc", slipway.EINVALID, "at least 4 bytes"},
		{"app", "x", strings.Repeat("v", slipway.MaxSecretBytes+1), slipway.ETOOLARGE, "the limit is"},
		{"app", "x", "bin\xff\xfe", slipway.EINVALID, "not UTF-8"},
		{"nope", "x", "value", slipway.ENOTFOUND, "not found"},
	} {
		_, err := db.SetSecret(ctx, tc.project, tc.name, []byte(tc.value))
		if slipway.ErrorCode(err) != tc.code || !strings.Contains(slipway.ErrorMessage(err), tc.msg) {
			t.Errorf("SetSecret(%q, %q) = %v; want %s with %q", tc.project, tc.name, err, tc.code, tc.msg)
		}
	}
}

// A key file others can read is refused rather than used.
func TestSecretsKeyModeChecked(t *testing.T) {
	db, path := openTest(t)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), SecretsKeyFile), bytes.Repeat([]byte{1}, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateProject(t.Context(), &slipway.Project{Name: "app", Repo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetSecret(t.Context(), "app", "x", []byte("value")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("SetSecret with a 0644 key file = %v", err)
	}
}
