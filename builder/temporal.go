package builder

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"
)

// TemporalConnection returns the connection options of a Temporal client
// that presents token as its bearer token ("": none) and speaks TLS as t
// says (nil: plain gRPC). The server and its agents dial with it.
func TemporalConnection(token string, t *TemporalTLS) (client.ConnectionOptions, client.Credentials, error) {
	var opts client.ConnectionOptions
	var creds client.Credentials
	if token != "" {
		creds = client.NewAPIKeyStaticCredentials(token)
	}
	if t == nil {
		// An API key would otherwise turn TLS on.
		opts.TLSDisabled = true
		return opts, creds, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CertPEM != "" || t.KeyPEM != "" {
		cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return opts, nil, fmt.Errorf("Temporal TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return opts, nil, errors.New("Temporal TLS CA: no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	opts.TLS = cfg
	return opts, creds, nil
}
