package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Sign returns the X-Hub-Signature-256 value a forge sends with body when
// its webhook secret is secret: "sha256=" and the hex HMAC-SHA256 of body.
// Tests and the CLI use it to send deliveries the handler accepts.
func Sign(secret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, body))
}

func mac(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// parseSignature decodes a signature header value into the raw MAC.
// X-Hub-Signature-256 must carry the "sha256=" prefix; Gitea's and Gogs'
// own headers carry the bare hex digest. A "sha1=" signature is refused:
// only SHA-256 is accepted, so an attacker cannot downgrade the check.
func parseSignature(value string, prefixed bool) ([]byte, error) {
	hexDigest, ok := strings.CutPrefix(value, "sha256=")
	if !ok && prefixed {
		return nil, errors.New("want sha256=<64 hex digits>")
	}
	sum, err := hex.DecodeString(hexDigest)
	if err != nil || len(sum) != sha256.Size {
		return nil, errors.New("want sha256=<64 hex digits>")
	}
	return sum, nil
}

// verify reports whether sum is body's HMAC-SHA256 under secret, comparing
// in constant time. An empty secret never verifies: anyone can compute an
// HMAC with an empty key.
func verify(secret string, body, sum []byte) bool {
	if secret == "" {
		return false
	}
	return hmac.Equal(mac(secret, body), sum)
}
