package agent

import (
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
)

// The wake's registry credential reaches buildah and the agent's own
// registry client through a 0600 file on the volume, for the server's
// registry only.
func TestRegistryAuth(t *testing.T) {
	layout := builder.VolumeLayout(t.TempDir())
	cfg := builder.AgentConfig{Registry: "127.0.0.1:8080", Credentials: builder.AgentCredentials{Registry: "slwc1.cred"}}
	path, err := registryAuth(cfg, layout)
	if err != nil || path != layout.RegistryAuth {
		t.Fatalf("registryAuth = %q, %v; want %s", path, err, layout.RegistryAuth)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("auth file: %v, %v; want mode 0600", st, err)
	}
	for ref, want := range map[string]string{"127.0.0.1:8080/web:1": "slwc1.cred", "registry.example.com/base:1": ""} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := authFileKeychain(path).Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, err := authn.Authorization(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		if got.Password != want {
			t.Errorf("password for %s = %q, want %q", ref, got.Password, want)
		}
	}
	// An external registry's login keeps its user name.
	ext := builder.AgentConfig{Registry: "r.example.com", Credentials: builder.AgentCredentials{Registry: "hunter2", RegistryUser: "ci-bot"}}
	extPath, err := registryAuth(ext, builder.VolumeLayout(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if user, pass, ok, err := buildah.AuthFileLogin(extPath, "r.example.com"); !ok || err != nil || user != "ci-bot" || pass != "hunter2" {
		t.Errorf("external login = %q:%q (%v, %v), want ci-bot:hunter2", user, pass, ok, err)
	}
	// Without a credential (an external registry) there is no file.
	if path, err := registryAuth(builder.AgentConfig{Registry: "r.example.com"}, builder.VolumeLayout(t.TempDir())); path != "" || err != nil {
		t.Errorf("registryAuth without a credential = %q, %v; want none", path, err)
	}
}
