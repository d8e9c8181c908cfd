// Package web serves Slipway's web UI: a single-page app (index.html,
// app.js, app.css) embedded in the binary. The app is a client of the
// GraphQL API at /graphql, like the CLI: it shows projects, their
// deployments, and a deployment's live log and phase timings.
//
// It only serves static files. It must not read the store, start
// deployments or call any other package: everything the UI shows or does
// goes through the API.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// spaRoute matches the paths the app routes itself (see routes in
// app.js); the server answers them with index.html.
var spaRoute = regexp.MustCompile(`^/(?:projects/?|projects/[^/]+/?|projects/[^/]+/logs/?|deployments/[^/]+/?)$`)

// asset is one embedded file ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
	// version is a short hash of body; index.html refers to the asset as
	// /NAME?v=VERSION so that a cached copy is never stale.
	version string
}

// handler serves the app's files.
type handler struct {
	index  asset
	assets map[string]asset // by URL path, e.g. "/app.js"
}

// contentTypes lists the types of the files in static/; a file of another
// kind is a programming error caught at start-up (and by the tests).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// csp allows only this origin: the app loads nothing from elsewhere, uses
// no inline script or style attributes, and talks only to /graphql (over
// HTTP today, WebSocket for subscriptions later).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler returns the web UI's handler, to be mounted at "/". It answers
// GET and HEAD: "/" and the app's routes (/projects, /projects/NAME,
// /projects/NAME/logs, /deployments/ID) with index.html, the app's assets by name, and 404 for
// anything else.
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		panic(err) // the embedded files are fixed at build time
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{assets: map[string]asset{}}
	var index []byte
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static")
		if name == "/index.html" {
			index = body
			return nil
		}
		a, err := newAsset(name, body)
		if err != nil {
			return err
		}
		h.assets[name] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: read embedded files: %w", err)
	}
	if index == nil {
		return nil, fmt.Errorf("web: static/index.html is missing")
	}
	// Point index.html at versioned asset URLs.
	for name, a := range h.assets {
		index = bytes.ReplaceAll(index, []byte(`"`+name+`"`), []byte(`"`+name+"?v="+a.version+`"`))
	}
	if h.index, err = newAsset("/index.html", index); err != nil {
		return nil, err
	}
	return h, nil
}

func newAsset(name string, body []byte) (asset, error) {
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		return asset{}, fmt.Errorf("web: no content type for %s", name)
	}
	sum := sha256.Sum256(body)
	v := hex.EncodeToString(sum[:])[:12]
	return asset{body: body, contentType: ct, etag: `"` + v + `"`, version: v}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch a, ok := h.assets[p]; {
	case p == "/" || p == "/index.html" || spaRoute.MatchString(p):
		// Always revalidated, so a new binary's UI shows at once.
		h.serve(w, r, h.index, "no-cache")
	case ok && r.URL.Query().Get("v") == a.version:
		h.serve(w, r, a, "public, max-age=31536000, immutable")
	case ok:
		h.serve(w, r, a, "no-cache")
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, a asset, cacheControl string) {
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", cacheControl)
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	if a.contentType == contentTypes[".html"] {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
	}
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
