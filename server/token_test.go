package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite"
)

func TestEnsureAdminToken(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *sqlite.DB {
		db, err := sqlite.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db := open("one.db")
	path := filepath.Join(dir, AdminTokenFile)
	created, err := ensureAdminToken(t.Context(), db, path)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v; want 0600", err, st.Mode())
	}
	b, _ := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	if tok, err := db.TokenByHash(t.Context(), slipway.HashToken(token)); err != nil || tok.Name != "admin" {
		t.Fatalf("the file's token is not in the store: %+v, %v", tok, err)
	}

	// A restart keeps it.
	if created, err := ensureAdminToken(t.Context(), db, path); err != nil || created {
		t.Errorf("restart: created %v, %v; want the same token", created, err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Errorf("restart rewrote the token")
	}
	if ts, _ := db.Tokens(t.Context()); len(ts) != 1 {
		t.Errorf("after a restart: %d tokens, want 1", len(ts))
	}

	// A new database learns the file's token again.
	db2 := open("two.db")
	if created, err := ensureAdminToken(t.Context(), db2, path); err != nil || created {
		t.Errorf("new database: created %v, %v", created, err)
	}
	if _, err := db2.TokenByHash(t.Context(), slipway.HashToken(token)); err != nil {
		t.Errorf("new database does not know the admin token: %v", err)
	}
}
