package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// An external Temporal behind mutual TLS that asks for an API key: the
// server refuses to start without the key, and with
// --temporal-api-key-file and --temporal-tls-cert/-key/-ca the server and
// its agents present both and a push builds. (The "external" Temporal is
// an embedded one started here, whose own credential serves as the key,
// behind a proxy that speaks TLS and asks for a client certificate.)
func TestExternalTemporalWithAPIKeyAndTLS(t *testing.T) {
	ts, creds := testenv.Temporal(t, func(context.Context, string) (string, error) {
		return "", errors.New("no deployments known here")
	})
	apiKey, err := creds.Server(credential.Temporal)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "temporal-api-key")
	if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tlsFiles := writeTLSFiles(t)
	addr := mtlsProxy(t, ts.HostPort(), tlsFiles)
	tlsFlags := []string{"--temporal", addr, "--temporal-tls-cert", tlsFiles.clientCert, "--temporal-tls-key", tlsFiles.clientKey, "--temporal-tls-ca", tlsFiles.ca}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, slipwayBin, append([]string{"server", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--listen", "127.0.0.1:0"}, tlsFlags...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "connect to Temporal at "+addr) {
		t.Errorf("server without the API key: %v\n%s\nwant it to stop, saying it cannot connect to Temporal", err, out)
	}

	s := startServer(t, t.TempDir(), "127.0.0.1:0", append(tlsFlags, "--temporal-api-key-file", keyFile)...)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo external\n"})
	s.addProject(t, "ext", "file://"+dir)
	if d := s.deployWait(t, "ext", sha); d.Status != "succeeded" {
		t.Fatalf("deployment %s\nagent:\n%s", d.Status, s.agentLog("ext"))
	}
	ac, err := builder.ReadAgentConfig(filepath.Join(s.DataDir, "volumes", "ext", "agent.json"))
	if err != nil || ac.Credentials.Temporal != apiKey || ac.Credentials.PayloadKey == "" || ac.Credentials.TemporalTLS == nil {
		t.Errorf("the agent's configuration: %v; Temporal credential is the API key: %v, payload key given: %v, TLS: %v",
			err, ac.Credentials.Temporal == apiKey, ac.Credentials.PayloadKey != "", ac.Credentials.TemporalTLS != nil)
	}
}

type tlsFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

// writeTLSFiles writes a CA, a server certificate for 127.0.0.1 and a
// client certificate, signed by it, as PEM files.
func writeTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	f := tlsFiles{ca: write("ca.pem", "CERTIFICATE", caDER)}
	f.serverCert, f.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	f.clientCert, f.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return f
}

// mtlsProxy listens on a loopback port with TLS, asks for a client
// certificate of f's CA, and passes each connection on to to. It stops
// when the test ends.
func mtlsProxy(t *testing.T, to string, f tlsFiles) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.serverCert, f.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = io.Copy(up, c)
					up.Close()
				}()
				_, _ = io.Copy(c, up)
				c.Close()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}
