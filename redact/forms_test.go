package redact

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// encodings are the ways a build tool may print a secret, each masked.
var encodings = []struct {
	name string
	enc  func(string) string
}{
	{"plain", func(s string) string { return s }},
	{"base64 std", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
	{"base64 url", func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
	{"base64 raw std", func(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
	{"base64 raw url", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"url query", url.QueryEscape},
	{"url path", url.PathEscape},
	{"url lower hex", func(s string) string { return lowerPercent(url.QueryEscape(s)) }},
	{"url mixed hex", func(s string) string { return mixedPercent(url.PathEscape(s)) }},
	{"hex", func(s string) string { return hex.EncodeToString([]byte(s)) }},
	{"HEX", func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }},
	{"json", func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }},
	{"json slash", func(s string) string {
		b, _ := json.Marshal(s)
		return strings.ReplaceAll(string(b[1:len(b)-1]), "/", `\/`)
	}},
}

func TestForms(t *testing.T) {
	for _, secret := range []string{"s3cr3t/p@ss+wörd<&>\"x", "ghp_0123456789abcdefXYZ", "line1\nline2 with \"quotes\""} {
		r := New(secret)
		for _, e := range encodings {
			in := "before " + e.enc(secret) + " after"
			got := r.Redact(in)
			if got != "before "+Mask+" after" {
				t.Errorf("%s: Redact(%q) = %q, want the secret masked", e.name, in, got)
			}
		}
	}
}

// Random secrets, in every encoding, at every base64 alignment, inside
// random text: the encoded secret never survives.
func TestFormsRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=:@%&?<>\"\\ é€\n"
	randString := func(n int) string {
		r := []rune(alphabet)
		var b strings.Builder
		for range n {
			b.WriteRune(r[rng.IntN(len(r))])
		}
		return b.String()
	}
	for range 300 {
		secret := randString(8 + rng.IntN(32))
		r := New(secret)
		for _, e := range encodings {
			in := randString(rng.IntN(10)) + e.enc(secret) + randString(rng.IntN(10))
			if got := r.Redact(in); strings.Contains(got, e.enc(secret)) {
				t.Fatalf("%s of %q: Redact(%q) = %q", e.name, secret, in, got)
			}
		}
		for k := range 3 {
			buf := append(bytes.Repeat([]byte{'x'}, k), secret...)
			buf = append(buf, "tail"...)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
				s := enc.EncodeToString(buf)
				core := s[(k*8+5)/6 : (k+len(secret))*8/6]
				if got := r.Redact(s); strings.Contains(got, core) {
					t.Fatalf("base64 of %q at offset %d: Redact(%q) = %q", secret, k, s, got)
				}
			}
		}
	}
}

// A PEM key printed whole, line by line, or JSON-escaped is masked on
// every line of its body.
func TestPEM(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := pem.Encode(&b, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}); err != nil {
		t.Fatal(err)
	}
	secret := b.String()
	r := New(secret)
	lines := strings.Split(strings.TrimSpace(secret), "\n")
	body := lines[1 : len(lines)-1]
	jsonKey, _ := json.Marshal(secret)
	for name, out := range map[string]string{
		"whole":    r.Redact("key:\n" + secret + "done\n"),
		"indented": r.Redact("  " + strings.Join(lines, "\n  ")),
		"json":     r.Redact(`{"key":` + string(jsonKey) + `}`),
	} {
		for _, l := range body {
			if strings.Contains(out, l) {
				t.Errorf("%s: line %q of the key survives in %q", name, l, out)
			}
		}
	}
	// Line by line, as a line writer passes it on.
	for _, l := range lines {
		got := r.Redact(l)
		if armour := strings.HasPrefix(l, "-----"); armour != (got == l) {
			t.Errorf("Redact(%q) = %q", l, got)
		}
	}
}

// Every line of a multi-line secret that is not PEM is masked, whatever
// it looks like.
func TestMultiLineSecret(t *testing.T) {
	r := New("user: admin\r\npassword: hunter2-x\n-----x-----\n")
	for _, l := range []string{"user: admin", "password: hunter2-x", "-----x-----"} {
		if got := r.Redact("> " + l); got != "> "+Mask {
			t.Errorf("Redact(%q) = %q", "> "+l, got)
		}
	}
}

// A line too long to pass on whole is cut, by Writer, where no secret is
// split: whatever the secret's offset around the cut, no form of it gets
// out.
func TestWriterLongLine(t *testing.T) {
	for _, secret := range []string{"ghp_0123456789abcdefXYZsecret", "p@ss/wörd:xyz+secret"} {
		writerLongLine(t, secret)
	}
}

func writerLongLine(t *testing.T, secret string) {
	r := New(secret)
	for _, e := range encodings {
		s := e.enc(secret)
		for off := maxPartial - len(s) - 1; off <= maxPartial+1; off++ {
			var out bytes.Buffer
			w := NewWriter(&out, r)
			line := strings.Repeat("a", off) + s + strings.Repeat("b", 2*maxPartial)
			for chunk := range slicesChunk(line, 4096) {
				_, _ = w.Write([]byte(chunk))
			}
			_ = w.Flush()
			if strings.Contains(out.String(), s) || !strings.Contains(out.String(), Mask) {
				t.Fatalf("%s at offset %d: the secret got out or was not masked", e.name, off)
			}
			if out.Len() != len(line)-len(s)+len(Mask) {
				t.Fatalf("%s at offset %d: %d bytes out, want %d", e.name, off, out.Len(), len(line)-len(s)+len(Mask))
			}
		}
	}
}

func slicesChunk(s string, n int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// The start of a secret at the end of a line cut short is masked.
func TestRedactTruncated(t *testing.T) {
	r := New("ghp_0123456789abcdef")
	tests := []struct{ in, want string }{
		{"token ghp_0123", "token " + Mask},
		{"token ghp_0123456789abcdef", "token " + Mask},
		{"token ghp", "token ghp"}, // shorter than MinSecretLen
		{"b64 Z2hwXzAxMj", "b64 " + Mask},
		{"ghp_01 and more", "ghp_01 and more"},
	}
	for _, tt := range tests {
		if got := r.RedactTruncated(tt.in); got != tt.want {
			t.Errorf("RedactTruncated(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := New().RedactTruncated("abc"); got != "abc" {
		t.Errorf("empty Redactor changed abc to %q", got)
	}
}

func TestCut(t *testing.T) {
	r := New("secret-value")
	line := []byte("xxxxxsecret-valueyyyyyyyyyyyyyyyyyyyy")
	for max := 1; max < 20; max++ {
		cut := r.Cut(line, max)
		if cut > max || (cut > 5 && cut < 17) {
			t.Errorf("Cut(%q, %d) = %d, splits the secret", line, max, cut)
		}
	}
	if got := New().Cut([]byte("héllo"), 2); got != 1 {
		t.Errorf("Cut inside é = %d, want 1", got)
	}
}

// mixedPercent returns s with the hex digits of every other %XX escape in
// lower case ("%2F…%3a…%2F"), as a hand-made encoder may write them.
func mixedPercent(s string) string {
	b := []byte(s)
	n := 0
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			if n%2 == 1 {
				b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			}
			n++
			i += 2
		}
	}
	return string(b)
}
