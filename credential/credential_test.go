package credential

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIssueAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFile)
	i, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", st, err)
	}
	tok, err := i.Agent(NATS, "demo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := i.Verify(NATS, tok)
	if err != nil || c.Project != "demo" || c.Server() {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// The same key, loaded again (a restarted server), accepts it.
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Verify(NATS, tok); err != nil {
		t.Fatalf("after reload: %v", err)
	}
	srv, _ := i.Server(Registry)
	if c, err := i.Verify(Registry, srv); err != nil || !c.Server() {
		t.Fatalf("server credential: %+v, %v", c, err)
	}

	other, _ := New([]byte(strings.Repeat("k", 32)))
	expired := &Issuer{key: i.key, now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	flip := []byte(tok)
	flip[len(Prefix)+3] ^= 1
	for name, try := range map[string]func() error{
		"another kind":   func() error { _, err := i.Verify(Temporal, tok); return err },
		"another key":    func() error { _, err := other.Verify(NATS, tok); return err },
		"expired":        func() error { _, err := expired.Verify(NATS, tok); return err },
		"payload edited": func() error { _, err := i.Verify(NATS, string(flip)); return err },
		"empty":          func() error { _, err := i.Verify(NATS, ""); return err },
		"no signature":   func() error { _, err := i.Verify(NATS, Prefix+"e30"); return err },
		"api token":      func() error { _, err := i.Verify(NATS, "slw_abc"); return err },
	} {
		if err := try(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Verify = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := i.Agent(NATS, "", time.Hour); err == nil {
		t.Error("an agent credential without a project was issued")
	}
}
