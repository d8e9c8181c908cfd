package gateway

import (
	"bytes"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// page is an answer of the gateway's own: why a request was not served.
type page struct {
	status  int
	title   string
	message string
	// output are the app's last output lines, shown as they are (escaped
	// in HTML).
	output []string
	// retryAfter, when positive, is sent as Retry-After, in seconds.
	retryAfter int
}

// pageHTML is the HTML form of a page; html/template escapes every value.
var pageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Status}} {{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:3rem auto;padding:0 1rem;color:#222}
pre{background:#f4f4f4;padding:1rem;overflow-x:auto;white-space:pre-wrap}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{- if .Output}}
<h2>The app's last output</h2>
<pre>{{range .Output}}{{.}}
{{end}}</pre>
{{- end}}
<p><small>{{.Status}} · Slipway</small></p></body></html>
`))

// page writes p as HTML to a browser (Accept names text/html) and as plain
// text to anything else. Nothing of it is cached.
func (g *Gateway) page(w http.ResponseWriter, r *http.Request, p page) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if !wantsHTML(r) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(p.status)
		var b strings.Builder
		b.WriteString(p.title + "\n\n" + p.message + "\n")
		if len(p.output) > 0 {
			b.WriteString("\nThe app's last output:\n")
			for _, l := range p.output {
				b.WriteString(l + "\n")
			}
		}
		_, _ = w.Write([]byte(b.String()))
		return
	}
	var b bytes.Buffer
	err := pageHTML.Execute(&b, map[string]any{
		"Status": p.status, "Title": p.title, "Message": p.message, "Output": p.output,
	})
	if err != nil { // cannot happen with this template and these types
		http.Error(w, p.title, p.status)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.status)
	_, _ = w.Write(b.Bytes())
}

// wantsHTML reports whether r's Accept header names text/html.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/html" {
				return true
			}
		}
	}
	return false
}

// notFound answers a host that names no app, saying nothing of which apps
// exist (nor echoing the host).
func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request) {
	message := "There is no app at this address. An app is served at <project>." + g.cfg.Domain +
		" and a pull request's preview at pr-<number>.<project>." + g.cfg.Domain + "."
	g.page(w, r, page{status: http.StatusNotFound, title: "No app here", message: message})
}

// unavailable answers 503 with message, and Retry-After when retryAfter
// is positive.
func (g *Gateway) unavailable(w http.ResponseWriter, r *http.Request, message string, retryAfter int) {
	g.page(w, r, page{status: http.StatusServiceUnavailable, title: "Service unavailable",
		message: message, retryAfter: retryAfter})
}
