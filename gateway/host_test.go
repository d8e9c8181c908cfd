package gateway

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	cases := []struct {
		host, domain string
		want         Route
		ok           bool
	}{
		{"demo.localhost", "localhost", Route{Project: "demo"}, true},
		{"demo.localhost:8081", "localhost", Route{Project: "demo"}, true},
		{"DEMO.LocalHost:8081", "localhost", Route{Project: "demo"}, true},
		{"demo.localhost.", "localhost", Route{Project: "demo"}, true},
		{"demo.localhost.:8081", "localhost", Route{Project: "demo"}, true},
		{"pr-12.demo.localhost:8081", "localhost", Route{Project: "demo", Preview: 12}, true},
		{"PR-7.my-app.localhost", "localhost", Route{Project: "my-app", Preview: 7}, true},
		{"pr-3.localhost", "localhost", Route{Project: "pr-3"}, true}, // a project named pr-3
		{"demo.apps.example.com", "apps.example.com", Route{Project: "demo"}, true},
		{"pr-1.demo.apps.example.com:443", "apps.example.com", Route{Project: "demo", Preview: 1}, true},
		{"x.demo.localhost", "localhost", Route{}, false},      // an extra label
		{"a.b.demo.localhost", "localhost", Route{}, false},    // two extra labels
		{"pr-0.demo.localhost", "localhost", Route{}, false},   // no PR 0
		{"pr-012.demo.localhost", "localhost", Route{}, false}, // leading zero
		{"pr-+5.demo.localhost", "localhost", Route{}, false},
		{"pr-9999999999.demo.localhost", "localhost", Route{}, false},
		{"pr-.demo.localhost", "localhost", Route{}, false},
		{"localhost", "localhost", Route{}, false},
		{"localhost:8081", "localhost", Route{}, false},
		{".localhost", "localhost", Route{}, false},
		{"demo..localhost", "localhost", Route{}, false},
		{"demolocalhost", "localhost", Route{}, false},
		{"demo.example.com", "localhost", Route{}, false},
		{"demo.localhost.evil.com", "localhost", Route{}, false},
		{"de_mo.localhost", "localhost", Route{}, false},
		{"-demo.localhost", "localhost", Route{}, false},
		{strings.Repeat("a", 64) + ".localhost", "localhost", Route{}, false},
		{"127.0.0.1", "localhost", Route{}, false},
		{"127.0.0.1:8081", "localhost", Route{}, false},
		{"[::1]:8081", "localhost", Route{}, false},
		{"[::1]", "localhost", Route{}, false},
		{"::1", "localhost", Route{}, false},
		{"", "localhost", Route{}, false},
	}
	for _, c := range cases {
		got, ok := parseHost(c.host, c.domain)
		if got != c.want || ok != c.ok {
			t.Errorf("parseHost(%q, %q) = %+v, %v; want %+v, %v", c.host, c.domain, got, ok, c.want, c.ok)
		}
	}
}

func TestRouteHost(t *testing.T) {
	for _, c := range []struct {
		r      Route
		domain string
		want   string
	}{
		{Route{Project: "demo"}, "", "demo.localhost"},
		{Route{Project: "demo", Preview: 12}, "apps.example.com", "pr-12.demo.apps.example.com"},
	} {
		if got := c.r.Host(c.domain); got != c.want {
			t.Errorf("%+v.Host(%q) = %q, want %q", c.r, c.domain, got, c.want)
		}
		if got, ok := parseHost(c.r.Host(c.domain), or(c.domain, DefaultDomain)); !ok || got != c.r {
			t.Errorf("parseHost(%q) = %+v, %v; want %+v back", c.r.Host(c.domain), got, ok, c.r)
		}
	}
}

func TestRouteURL(t *testing.T) {
	for _, c := range []struct {
		r              Route
		domain, listen string
		want           string
	}{
		{Route{Project: "demo"}, "", DefaultListen, "http://demo.localhost:8081"},
		{Route{Project: "demo", Preview: 3}, "localhost", "[::1]:9000", "http://pr-3.demo.localhost:9000"},
		{Route{Project: "demo"}, "apps.example.com", ":80", "http://demo.apps.example.com"},
	} {
		if got := c.r.URL(c.domain, c.listen); got != c.want {
			t.Errorf("%+v.URL(%q, %q) = %q, want %q", c.r, c.domain, c.listen, got, c.want)
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestNewRefusesABadDomain(t *testing.T) {
	for _, d := range []string{"127.0.0.1", "a..b", "-x.com", "a_b.com"} {
		if _, err := New(Config{Apps: fakeApps{}, Domain: d}); err == nil {
			t.Errorf("New with domain %q: no error", d)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without Apps: no error")
	}
}

// TestRoutingByHost sends requests with hosts of every shape through the
// gateway: the project's app and its preview are reached, anything else
// gets a 404 that names no app.
func TestRoutingByHost(t *testing.T) {
	apps := fakeApps{
		demo:                          {t: t, handler: echoBackend("demo")},
		{Project: "demo", Preview: 7}: {t: t, handler: echoBackend("demo preview 7")},
	}
	tg := startGateway(t, Config{Apps: apps})
	for _, c := range []struct{ host, app string }{
		{"demo.localhost", "demo"},
		{"DEMO.LOCALHOST:8081", "demo"},
		{"demo.localhost.", "demo"},
		{"pr-7.demo.localhost:8081", "demo preview 7"},
		{"pr-8.demo.localhost", ""},
		{"x.demo.localhost", ""},
		{"other.localhost", ""},
		{"localhost:8081", ""},
		{"127.0.0.1:8081", ""},
		{"[::1]:8081", ""},
		{"demo.example.com", ""},
	} {
		resp, body := tg.get(t, "http://gateway/", map[string]string{"Host": c.host})
		if c.app == "" {
			if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "demo") {
				t.Errorf("Host %q: status %d, body %q; want a 404 that names no app", c.host, resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200; body %q", c.host, resp.StatusCode, body)
			continue
		}
		if s := decodeSeen(t, body); s.App != c.app || s.Host != c.host {
			t.Errorf("Host %q reached %q with Host %q, want %q with the client's Host", c.host, s.App, s.Host, c.app)
		}
	}
}
