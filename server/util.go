package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
)

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// indexPage is a placeholder until the web UI lands: it says where the API
// and webhook endpoints are.
func indexPage(publicURL string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		u := html.EscapeString(publicURL)
		fmt.Fprintf(w, `<!doctype html><title>Slipway</title><h1>Slipway</h1>
<p>GraphQL API: <a href="%[1]s/graphql">%[1]s/graphql</a></p>
<p>Webhook URL: <code>%[1]s/webhooks/github</code></p>
<p>Registry: <code>%[1]s/v2/</code></p>`, u)
	}
}
