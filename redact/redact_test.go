package redact

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const secret = "s3cr3t/p@ss+wörd"
	r := New(secret, "", "abc") // "" and "abc" are too short to mask
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name, in string
	}{
		{"plain", "token is " + secret + "."},
		{"url query", "https://x:" + url.QueryEscape(secret) + "@example.com/r.git"},
		{"url path", "GET /" + url.PathEscape(secret) + "/x"},
		{"base64", "secret: " + b64([]byte(secret))},
		{"base64url", "secret: " + base64.URLEncoding.EncodeToString([]byte(secret))},
		{"basic auth", "Authorization: Basic " + b64([]byte("user:"+secret))},
		{"base64 offset 2", "x " + b64([]byte("ab"+secret+"tail"))},
		{"base64 offset 0", "x " + b64([]byte("abc"+secret+"tail"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Redact(tt.in)
			if !strings.Contains(got, Mask) {
				t.Errorf("Redact(%q) = %q, want %s in it", tt.in, got, Mask)
			}
			for _, f := range Forms(secret) {
				if strings.Contains(got, f) {
					t.Errorf("Redact(%q) = %q still contains %q", tt.in, got, f)
				}
			}
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q", tt.in, got)
			}
		})
	}
	for _, keep := range []string{"abc def", "", "nothing secret here"} {
		if got := r.Redact(keep); got != keep {
			t.Errorf("Redact(%q) = %q, want it unchanged", keep, got)
		}
	}
	var none *Redactor
	if got := none.Redact(secret); got != secret || !none.Empty() {
		t.Errorf("nil Redactor changed %q to %q", secret, got)
	}
	if !New("").Empty() || New(secret).Empty() {
		t.Errorf("Empty: want true only for a redactor without secrets")
	}
}

// Every alignment of the secret inside a longer base64 string is masked.
func TestBase64Alignments(t *testing.T) {
	const secret = "ghp_0123456789abcdefXYZ"
	r := New(secret)
	for pre := range 6 {
		for post := range 4 {
			raw := strings.Repeat("P", pre) + secret + strings.Repeat("Q", post)
			enc := base64.StdEncoding.EncodeToString([]byte(raw))
			got := r.Redact(enc)
			if got == enc {
				t.Errorf("base64 of %q (%s) not redacted", raw, enc)
			}
			// What is left must not decode back to the secret, in any
			// alignment of the remaining characters.
			for i := range 4 {
				left := strings.ReplaceAll(got, Mask, "")
				if i < len(left) {
					dec, _ := base64.StdEncoding.DecodeString(padTo4(left[i:]))
					if bytes.Contains(dec, []byte(secret[2:len(secret)-2])) {
						t.Errorf("redacted %q still decodes to the secret", got)
					}
				}
			}
		}
	}
}

func padTo4(s string) string {
	s = s[:len(s)/4*4]
	return s
}

func TestRepoURLSecrets(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"https://user:tok%2Fen@github.com/a/b.git", "tok/en"},
		{"https://user:p%2fa%40ss%20x@github.com/a/b.git", "p/a@ss x"}, // lower case hex is a form
		{"https://user:p%2fa%2Fss%20x@github.com/a/b.git", "p/a/ss x,p%2fa%2Fss%20x"},
		{"https://user:p@ss@github.com/a@b.git", "p@ss"},
		{"https://x-access-token:ghs_abcdefghijklmnop@github.com/a/b", "ghs_abcdefghijklmnop"},
		{"https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/a/b", "ghp_abcdefghijklmnopqrstuvwxyz"},
		{"https://alice@example.com/r.git", ""},
		{"ssh://git@example.com/r.git", ""},
		{"git@github.com:a/b.git", ""},
		{"file:///srv/r", ""},
		{"https://user:@example.com/r", ""},
	}
	for _, tt := range tests {
		got := strings.Join(RepoURLSecrets(tt.url), ",")
		if got != tt.want {
			t.Errorf("RepoURLSecrets(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, New("hunter22"))
	for _, chunk := range []string{"pass: hun", "ter22\nnext ", "line hunter", "22"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if got := out.String(); got != "pass: [redacted]\n" {
		t.Errorf("before Flush: %q", got)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "pass: [redacted]\nnext line [redacted]"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestRepoURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:tok3n-value@github.com/o/r.git", "https://user:" + Mask + "@github.com/o/r.git"},
		{"https://ghp_0123456789abcdefghij@github.com/o/r.git", "https://" + Mask + "@github.com/o/r.git"},
		{"https://x:p%40ss%2Fw0rd@example.com/r", "https://x:" + Mask + "@example.com/r"},
		{"ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"},
		{"git@github.com:o/r.git", "git@github.com:o/r.git"},
		{"file:///srv/git/r", "file:///srv/git/r"},
	}
	for _, tt := range tests {
		if got := RepoURL(tt.in); got != tt.want {
			t.Errorf("RepoURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
