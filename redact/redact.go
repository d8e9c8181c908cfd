// Package redact masks secrets in build output before it reaches any sink
// (the log stream, the store, stdout): each secret's plain value and the
// forms a build tool is likely to print it in, base64 (standard and
// URL-safe, at any alignment inside a longer encoded string, as in a basic
// auth header) and URL encoding (query and path escaping), become
// "[redacted]".
//
// It only rewrites text; it does not know where secrets come from. The
// agent decides what is secret (see RepoURLSecrets).
package redact

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what every occurrence of a secret becomes.
const Mask = "[redacted]"

// MinSecretLen is the shortest secret that is masked: a shorter "secret"
// would mask ordinary text all over the log, and a short value is no
// secret anyway.
const MinSecretLen = 4

// minEncodedLen is the shortest encoded fragment masked: the base64 of a
// secret at an unaligned offset loses up to three characters at each end.
const minEncodedLen = 6

// Redactor replaces secrets in text. The zero value and a nil *Redactor
// mask nothing. It is safe for concurrent use.
type Redactor struct {
	r *strings.Replacer
}

// New returns a Redactor for secrets. Empty secrets, and secrets shorter
// than MinSecretLen, are ignored.
func New(secrets ...string) *Redactor {
	forms := map[string]bool{}
	for _, s := range secrets {
		if len(s) < MinSecretLen {
			continue
		}
		for _, f := range Forms(s) {
			forms[f] = true
		}
	}
	if len(forms) == 0 {
		return &Redactor{}
	}
	list := make([]string, 0, len(forms))
	for f := range forms {
		list = append(list, f)
	}
	// At one position the replacer takes the first pair that matches, so
	// longer forms go first: a secret's base64 must not be cut short by a
	// shorter fragment of it.
	slices.SortFunc(list, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(list))
	for _, f := range list {
		pairs = append(pairs, f, Mask)
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// Forms returns the strings that reveal secret: the secret itself, its URL
// encodings, and its base64 encodings at each of the three alignments a
// secret can have inside a longer encoded string (only the characters that
// depend on the secret alone; fragments shorter than six characters are
// left out).
func Forms(secret string) []string {
	forms := []string{secret}
	add := func(f string) {
		if f != "" && !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	add(url.QueryEscape(secret))
	add(url.PathEscape(secret))
	add(strings.ReplaceAll(url.QueryEscape(secret), "+", "%20"))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for _, f := range base64Fragments(enc, []byte(secret)) {
			if len(f) >= minEncodedLen {
				add(f)
			}
		}
	}
	return forms
}

// base64Fragments returns, for each offset k of 0, 1 and 2 bytes before
// the secret in an encoded stream, the base64 characters that encode the
// secret's bits only.
func base64Fragments(enc *base64.Encoding, secret []byte) []string {
	var out []string
	for k := range 3 {
		buf := make([]byte, k+len(secret))
		copy(buf[k:], secret)
		s := enc.WithPadding(base64.NoPadding).EncodeToString(buf)
		start := (k*8 + 5) / 6           // first character with no bit of the prefix
		end := (k + len(secret)) * 8 / 6 // characters from here on mix in what follows
		if start < end {
			out = append(out, s[start:end])
		}
	}
	// The whole secret encoded on its own, with its last partial group and
	// padding, as in a basic auth header or a token file.
	out = append(out, enc.EncodeToString(secret))
	return out
}

// Redact returns s with every form of every secret replaced by Mask.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Empty reports whether r masks nothing.
func (r *Redactor) Empty() bool {
	return r == nil || r.r == nil
}

// Func returns r.Redact as a function, or nil when r masks nothing (for
// hooks such as publish.Config.Redact).
func (r *Redactor) Func() func(string) string {
	if r.Empty() {
		return nil
	}
	return r.Redact
}

// RepoURLSecrets returns the secrets in a git remote URL's userinfo: the
// password (https://user:TOKEN@host/...), or a username that stands alone
// and is long enough to be a token (https://TOKEN@host/...). Usernames
// such as "git" in ssh://git@host/... are not secret.
//
// Besides the decoded value it returns the value as written in repo, when
// that differs (percent-encoded otherwise than Forms would encode it).
func RepoURLSecrets(repo string) []string {
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return nil
	}
	// The userinfo as written: between "://" and the last "@" before the
	// path.
	raw := repo[strings.Index(repo, "://")+3:]
	if i := strings.IndexByte(raw, '/'); i >= 0 {
		raw = raw[:i]
	}
	raw = raw[:max(strings.LastIndexByte(raw, '@'), 0)]
	rawUser, rawPass, hasPass := strings.Cut(raw, ":")
	var secret, written string
	if pw, ok := u.User.Password(); ok {
		secret, written = pw, rawPass
	} else if name := u.User.Username(); len(name) >= 16 {
		secret, written = name, rawUser
	}
	if secret == "" || (hasPass && rawPass == "") {
		return nil
	}
	if written != "" && !slices.Contains(Forms(secret), written) {
		return []string{secret, written}
	}
	return []string{secret}
}

// ForRepo returns a Redactor for the secrets RepoURLSecrets finds in repo,
// for text that may quote the repository's URL (git's errors).
func ForRepo(repo string) *Redactor {
	return New(RepoURLSecrets(repo)...)
}

// RepoURL returns repo with the secrets RepoURLSecrets finds in it masked,
// for showing a project's repository to users (the API, the CLI): the
// store keeps the URL as given, since the builder needs its credentials.
func RepoURL(repo string) string {
	return ForRepo(repo).Redact(repo)
}

// Writer is an io.Writer that redacts whole lines before passing them on,
// so a secret split across two writes is still masked. A trailing partial
// line is passed on by Flush. It is safe for concurrent use.
type Writer struct {
	r   *Redactor
	dst io.Writer

	mu  sync.Mutex
	buf []byte
}

// NewWriter returns a Writer that redacts with r and writes to dst.
func NewWriter(dst io.Writer, r *Redactor) *Writer {
	return &Writer{r: r, dst: dst}
}

// maxPartial bounds a line held back waiting for its newline.
const maxPartial = 64 << 10

// Write passes on every complete line in p, redacted; it reports len(p)
// unless dst fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	i := bytes.LastIndexByte(w.buf, '\n')
	if i < 0 && len(w.buf) < maxPartial {
		return len(p), nil
	}
	if i < 0 {
		i = len(w.buf) - 1
	}
	out := w.r.Redact(string(w.buf[:i+1]))
	w.buf = w.buf[:copy(w.buf, w.buf[i+1:])]
	if _, err := io.WriteString(w.dst, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush passes on a trailing partial line, redacted.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	out := w.r.Redact(string(w.buf))
	w.buf = w.buf[:0]
	_, err := io.WriteString(w.dst, out)
	return err
}
