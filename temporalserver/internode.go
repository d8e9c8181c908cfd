package temporalserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"go.temporal.io/server/common/rpc/encryption"
)

// internodeName is the name in the internode certificate, which every
// internal connection asks for.
const internodeName = "slipway-temporal-internode"

// internodeTLS is the TLS of the embedded server's own connections: its
// services (history, matching, worker and the internal frontend) accept
// only clients holding a certificate of a CA made at each start, whose
// key only this process has. So no local process can call them directly
// and skip the public frontend's checks. The public frontend speaks plain
// gRPC on its loopback address and checks each caller's credential
// (access.go).
type internodeTLS struct {
	server, client *tls.Config
}

var _ encryption.TLSConfigProvider = (*internodeTLS)(nil)

// newInternodeTLS makes a CA and one certificate (server and client)
// signed by it, for ip and internodeName, held in memory only.
func newInternodeTLS(ip string) (*internodeTLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("temporal internode CA: %w", err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slipway temporal internode CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("temporal internode CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("temporal internode certificate: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: internodeName},
		DNSNames: []string{internodeName}, IPAddresses: []net.IP{net.ParseIP(ip)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("temporal internode certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &internodeTLS{
		server: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		},
		client: &tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: pool,
			ServerName: internodeName, MinVersion: tls.VersionTLS12,
		},
	}, nil
}

func (t *internodeTLS) GetInternodeServerConfig() (*tls.Config, error) { return t.server.Clone(), nil }
func (t *internodeTLS) GetInternodeClientConfig() (*tls.Config, error) { return t.client.Clone(), nil }

// The public frontend speaks plain gRPC (nil): its callers present
// credentials as bearer tokens.
func (t *internodeTLS) GetFrontendServerConfig() (*tls.Config, error) { return nil, nil }
func (t *internodeTLS) GetFrontendClientConfig() (*tls.Config, error) { return nil, nil }
func (t *internodeTLS) GetRemoteClusterClientConfig(string) (*tls.Config, error) {
	return nil, nil
}
func (t *internodeTLS) GetExpiringCerts(time.Duration) (encryption.CertExpirationMap, encryption.CertExpirationMap, error) {
	return nil, nil, nil
}
