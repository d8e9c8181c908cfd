package builder

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// The embedded Temporal is plain gRPC even with a token (which would turn
// TLS on by itself); an external one's TLS material is used as given, and
// bad material is refused with a clear error.
func TestTemporalConnection(t *testing.T) {
	opts, creds, err := TemporalConnection("tok", nil)
	if err != nil || !opts.TLSDisabled || opts.TLS != nil || creds == nil {
		t.Errorf("embedded: %+v, %v, %v; want plain gRPC with a bearer token", opts, creds, err)
	}
	if _, creds, _ := TemporalConnection("", nil); creds != nil {
		t.Errorf("no token: credentials %v, want none", creds)
	}
	cert, key := selfSigned(t)
	opts, _, err = TemporalConnection("", &TemporalTLS{CertPEM: cert, KeyPEM: key, CAPEM: cert})
	if err != nil || opts.TLSDisabled || opts.TLS == nil || len(opts.TLS.Certificates) != 1 || opts.TLS.RootCAs == nil {
		t.Errorf("mTLS: %+v, %v; want TLS with a client certificate and the CA", opts.TLS, err)
	}
	opts, _, err = TemporalConnection("k", &TemporalTLS{})
	if err != nil || opts.TLS == nil || opts.TLS.RootCAs != nil || len(opts.TLS.Certificates) != 0 {
		t.Errorf("TLS with the system's CAs: %+v, %v", opts.TLS, err)
	}
	for name, bad := range map[string]TemporalTLS{
		"certificate without key": {CertPEM: cert},
		"CA not PEM":              {CAPEM: "not a certificate"},
	} {
		if _, _, err := TemporalConnection("", &bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
