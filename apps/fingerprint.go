package apps

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Fingerprint says what a container runs: an HMAC of spec with its
// defaults filled in (image, port, environment, limits, health path,
// writability; not the release), under a key of this runtime's own
// (Dir/spec.key), so that the label it is kept in (LabelSpec) tells
// nothing of the environment's secrets. Two specs with one fingerprint
// run the same: a container of an earlier release can serve a later one
// (a rollback, a redeploy of one image) as it is.
func (r *Runtime) Fingerprint(spec Spec) (string, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return "", err
	}
	spec.Release = ""
	spec.Env = slices.Clone(spec.Env)
	slices.Sort(spec.Env)
	b, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, r.specKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil)[:12]), nil
}

// Find returns a container of project that runs spec as it is (same
// Fingerprint), whatever its release and state; ErrNotFound when there is
// none.
func (r *Runtime) Find(ctx context.Context, spec Spec) (*Instance, error) {
	fp, err := r.Fingerprint(spec)
	if err != nil {
		return nil, err
	}
	insts, err := r.Reconcile(ctx)
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		if inst.Project == spec.Project && inst.Spec == fp {
			return r.Get(ctx, inst.Project, inst.Release)
		}
	}
	return nil, fmt.Errorf("app %s: no container runs this spec: %w", spec.Project, ErrNotFound)
}

// loadSpecKey reads the fingerprints' key at path, made (0600) on first
// use.
func loadSpecKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("write the spec key: %w", err)
	}
	return key, nil
}
