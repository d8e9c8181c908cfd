package testenv

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/temporalserver"
)

// Temporal starts an embedded Temporal that checks its callers with a new
// key, telling it a deployment's project with deploymentProject; it stops
// when the test ends. It returns the server and its key's issuer.
func Temporal(t testing.TB, deploymentProject func(ctx context.Context, deployment string) (string, error)) (*temporalserver.Server, *credential.Issuer) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	creds, err := credential.New(key)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := temporalserver.Start(temporalserver.Config{
		DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"),
		Access:       temporalserver.Access{Credentials: creds, DeploymentProject: deploymentProject},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Stop)
	return ts, creds
}

// TemporalClient dials ts as the server does (its credential, plain
// gRPC); the client closes when the test ends.
func TemporalClient(t testing.TB, ts *temporalserver.Server, creds *credential.Issuer) client.Client {
	t.Helper()
	tok, err := creds.Server(credential.Temporal)
	if err != nil {
		t.Fatal(err)
	}
	opts := client.Options{HostPort: ts.HostPort(), Credentials: client.NewAPIKeyStaticCredentials(tok)}
	opts.ConnectionOptions.TLSDisabled = true
	tc, err := client.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}
