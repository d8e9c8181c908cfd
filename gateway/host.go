package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/slipway-ci/slipway"
)

// DefaultDomain is the apps' domain when Config.Domain is empty: browsers
// resolve every name under localhost to the loopback address, so
// http://demo.localhost:8081 works with no DNS set-up.
const DefaultDomain = "localhost"

// A Route names what a request's host asks for: a project's app, or one
// of its pull requests' previews.
type Route struct {
	// Project is the project's name (valid by slipway.ValidateProjectName).
	Project string
	// Preview is the number of the pull request whose preview is asked
	// for, or 0 for the project's own app.
	Preview int
}

// String returns the route's host name below the apps' domain:
// "demo" or "pr-12.demo".
func (r Route) String() string {
	if r.Preview > 0 {
		return "pr-" + strconv.Itoa(r.Preview) + "." + r.Project
	}
	return r.Project
}

// Host returns the route's host name under domain (DefaultDomain when
// empty), e.g. "pr-12.demo.localhost": what `slipway open` puts in a URL,
// with the listener's port.
func (r Route) Host(domain string) string {
	if domain == "" {
		domain = DefaultDomain
	}
	return r.String() + "." + domain
}

// URL returns the address a browser opens for the route when the gateway
// listens on listen (host:port, e.g. DefaultListen) under domain:
// "http://demo.localhost:8081" (no port when it is 80). Behind a TLS proxy
// the public URL is the proxy's, not this.
func (r Route) URL(domain, listen string) string {
	u := "http://" + r.Host(domain)
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" && port != "80" {
		u += ":" + port
	}
	return u
}

// normalDomain checks an apps' domain and returns it lowercased without a
// trailing dot.
func normalDomain(domain string) (string, error) {
	if domain == "" {
		return DefaultDomain, nil
	}
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	if _, err := netip.ParseAddr(d); err == nil {
		return "", fmt.Errorf("apps domain %q: an IP address cannot have app names below it", domain)
	}
	for _, label := range strings.Split(d, ".") {
		if !validLabel(label) {
			return "", fmt.Errorf("apps domain %q: %q is not a DNS label (letters, digits and dashes, 1-63)", domain, label)
		}
	}
	return d, nil
}

// validLabel reports whether s is a DNS label: 1-63 letters, digits and
// dashes, neither starting nor ending with a dash.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// parseHost returns the route that host (a Host header or an HTTP/2
// :authority, with or without a port, in any case, with or without a
// trailing dot) names under domain (normalised by normalDomain). It
// reports false for anything else: an IP literal, the domain itself, a
// host outside it, a name with extra labels or an invalid project name.
func parseHost(host, domain string) (Route, bool) {
	name := hostname(host)
	if name == "" {
		return Route{}, false
	}
	sub, ok := strings.CutSuffix(name, "."+domain)
	if !ok || sub == "" {
		return Route{}, false
	}
	first, project, two := strings.Cut(sub, ".")
	if !two {
		project = first
	} else if strings.Contains(project, ".") {
		return Route{}, false
	}
	if slipway.ValidateProjectName(project) != nil {
		return Route{}, false
	}
	if !two {
		return Route{Project: project}, true
	}
	n, ok := previewNumber(first)
	if !ok {
		return Route{}, false
	}
	return Route{Project: project, Preview: n}, true
}

// hostname returns host without its port, brackets or trailing dot,
// lowercased; "" for an IP literal or an empty host.
func hostname(host string) string {
	h := host
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		} else {
			h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		}
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if _, err := netip.ParseAddr(h); err == nil {
		return ""
	}
	return h
}

// previewNumber parses the label "pr-N" (N a decimal without leading
// zeros, 1 to 999999999).
func previewNumber(label string) (int, bool) {
	digits, ok := strings.CutPrefix(label, "pr-")
	if !ok || digits == "" || len(digits) > 9 || digits[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}
