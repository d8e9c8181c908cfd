package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// registryClient asks the registry at host about its images. Loopback
// registries speak plain HTTP.
type registryClient struct {
	host string
	// user and cred are the login: the server's credential for the
	// embedded registry (any user name), the --registry-auth-file login
	// for an external one, or none.
	user, cred string
	// tlsVerify is false for an external registry with
	// --registry-insecure: certificates are then not checked.
	tlsVerify bool
}

// registryClient is the server's client of its registry.
func (p *parts) registryClient() registryClient {
	user := p.registryUser
	if user == "" {
		user = "slipway-server"
	}
	return registryClient{host: p.registryHost, user: user, cred: p.registryCred, tlsVerify: registryTLSVerify(p.cfg)}
}

// ImageExists asks the registry whether image's repository has the
// manifest reference, a digest (deploy.ServiceConfig.ImageExists) or a
// tag (the demo's base image).
func (c registryClient) ImageExists(ctx context.Context, image, reference string) (bool, error) {
	host := c.host
	rest := strings.TrimPrefix(image, host+"/")
	if rest == image {
		return false, fmt.Errorf("image %s is not in registry %s", image, host)
	}
	repo := rest
	if i := strings.LastIndex(rest, ":"); i > 0 {
		repo = rest[:i]
	}
	scheme := "https"
	if h, _, err := net.SplitHostPort(strings.SplitN(host, "/", 2)[0]); err == nil {
		if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || h == "localhost" {
			scheme = "http"
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, scheme+"://"+host+"/v2/"+repo+"/manifests/"+reference, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json")
	if c.cred != "" {
		req.SetBasicAuth(c.user, c.cred)
	}
	hc := http.DefaultClient
	if !c.tlsVerify && scheme == "https" {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --registry-insecure asks for exactly this
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("registry answered %s", resp.Status)
}
