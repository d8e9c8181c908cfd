package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/payloadcodec"
)

// loadTemporalAccess reads what the server's and its agents' Temporal
// clients present: the payload codec's key (created in the data directory
// on first start), and for an external Temporal the TLS material and API
// key of the files Config names.
func (p *parts) loadTemporalAccess() error {
	key, err := credential.ReadKeyFile(filepath.Join(p.dataDir, payloadcodec.KeyFile))
	if err != nil {
		return fmt.Errorf("payload key: %w", err)
	}
	if p.codec, err = payloadcodec.New(key); err != nil {
		return err
	}
	p.payloadKey = base64.StdEncoding.EncodeToString(key)
	c := p.cfg
	if c.TemporalAddress == "" {
		if c.TemporalTLSCert != "" || c.TemporalTLSKey != "" || c.TemporalTLSCA != "" || c.TemporalAPIKeyFile != "" || c.TemporalAPIKey != "" {
			return errors.New("--temporal-tls-* and --temporal-api-key[-file] are for an external Temporal (--temporal)")
		}
		return nil
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		return errors.New("--temporal-tls-cert and --temporal-tls-key go together")
	}
	if c.TemporalTLSCert != "" || c.TemporalTLSCA != "" {
		p.temporalTLS = &builder.TemporalTLS{}
		for _, f := range []struct {
			path string
			to   *string
		}{
			{c.TemporalTLSCert, &p.temporalTLS.CertPEM}, {c.TemporalTLSKey, &p.temporalTLS.KeyPEM}, {c.TemporalTLSCA, &p.temporalTLS.CAPEM},
		} {
			if err := readInto(f.path, f.to); err != nil {
				return fmt.Errorf("Temporal TLS: %w", err)
			}
		}
	}
	if c.TemporalAPIKey != "" && c.TemporalAPIKeyFile != "" {
		return errors.New("--temporal-api-key and --temporal-api-key-file: give one")
	}
	p.temporalAPIKey = c.TemporalAPIKey
	if err := readInto(c.TemporalAPIKeyFile, &p.temporalAPIKey); err != nil {
		return fmt.Errorf("Temporal API key: %w", err)
	}
	p.temporalAPIKey = strings.TrimSpace(p.temporalAPIKey)
	if p.temporalAPIKey != "" && p.temporalTLS == nil {
		// An API key never travels in clear: TLS with the system's CAs.
		p.temporalTLS = &builder.TemporalTLS{}
	}
	return nil
}

// readInto reads the file at path, if any, into to.
func readInto(path string, to *string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	*to = string(b)
	return nil
}

// temporalToken is the bearer token a Temporal client of project's agent
// ("" for the server's own) presents: a credential of the embedded
// Temporal, or the external one's API key.
func (p *parts) temporalToken(project string) (string, error) {
	if p.cfg.TemporalAddress != "" {
		return p.temporalAPIKey, nil
	}
	if project == "" {
		return p.creds.Server(credential.Temporal)
	}
	return p.creds.Agent(credential.Temporal, project, 0)
}

// deploymentProject tells the embedded Temporal whose a deployment is, so
// that only its project's agent touches its workflows.
func (p *parts) deploymentProject(ctx context.Context, id string) (string, error) {
	d, err := p.store.Deployment(ctx, id)
	if err != nil {
		return "", err
	}
	return d.Project, nil
}

func (p *parts) dialTemporal(ctx context.Context) error {
	tok, err := p.temporalToken("")
	if err != nil {
		return err
	}
	conn, creds, err := builder.TemporalConnection(tok, p.temporalTLS)
	if err != nil {
		return err
	}
	dc := p.codec.DataConverter()
	tc, err := client.DialContext(ctx, client.Options{
		HostPort:          p.temporalAddr,
		Namespace:         p.cfg.TemporalNamespace,
		ConnectionOptions: conn,
		Credentials:       creds,
		DataConverter:     dc,
		FailureConverter:  payloadcodec.FailureConverter(dc),
		// The SDK narrates every poll at info level.
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", p.temporalAddr, err)
	}
	p.temporal = tc
	return nil
}

// DialTemporal dials the embedded Temporal of the server whose data
// directory is dataDir as that server does: with its credential and, but
// if raw, its payload codec (raw: payloads as Temporal stores them). For
// tools and tests beside a server, run by a user who may read the data
// directory.
func DialTemporal(ctx context.Context, dataDir, namespace string, raw bool) (client.Client, error) {
	st, err := loadState(filepath.Join(dataDir, "state.json"))
	if err != nil {
		return nil, err
	}
	if st.TemporalPort == 0 {
		return nil, fmt.Errorf("%s: no embedded Temporal recorded", dataDir)
	}
	creds, err := credential.Load(filepath.Join(dataDir, credential.KeyFile))
	if err != nil {
		return nil, err
	}
	tok, err := creds.Server(credential.Temporal)
	if err != nil {
		return nil, err
	}
	conn, bearer, err := builder.TemporalConnection(tok, nil)
	if err != nil {
		return nil, err
	}
	opts := client.Options{
		HostPort: fmt.Sprintf("127.0.0.1:%d", st.TemporalPort), Namespace: namespace,
		ConnectionOptions: conn, Credentials: bearer,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}
	if !raw {
		key, err := credential.ReadKeyFile(filepath.Join(dataDir, payloadcodec.KeyFile))
		if err != nil {
			return nil, err
		}
		codec, err := payloadcodec.New(key)
		if err != nil {
			return nil, err
		}
		opts.DataConverter = codec.DataConverter()
		opts.FailureConverter = payloadcodec.FailureConverter(opts.DataConverter)
	}
	return client.DialContext(ctx, opts)
}
