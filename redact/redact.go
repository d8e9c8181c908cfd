// Package redact masks secrets in build output before it reaches any sink
// (the log stream, the store, stdout): each secret's plain value and the
// forms a build tool is likely to print it in, base64 (standard and
// URL-safe, padded or not, at any alignment inside a longer encoded string,
// as in a basic auth header), URL encoding (query and path escaping, either
// hex case), hex (either case) and JSON string escaping, become
// "[redacted]". Each line of a multi-line secret (a PEM key) is a secret of
// its own, since output is passed on line by line.
//
// Masking happens before output is cut into pieces: Cut says where a long
// line may be cut without splitting a secret, and Writer uses it.
//
// It only rewrites text; it does not know where secrets come from. The
// agent decides what is secret (see RepoURLSecrets).
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
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
	// forms are the strings masked, longest first.
	forms []string
	// percent are the forms holding %XX escapes, their hex digits in
	// lower case, each once: what mixedPercent folds against.
	percent []string
}

// New returns a Redactor for secrets. Empty secrets, and secrets shorter
// than MinSecretLen, are ignored. A secret that spans lines is masked
// whole and, line by line, each of its lines (see secretLines).
func New(secrets ...string) *Redactor {
	forms := map[string]bool{}
	for _, s := range secrets {
		for _, v := range append([]string{s}, secretLines(s)...) {
			if len(v) < MinSecretLen {
				continue
			}
			for _, f := range Forms(v) {
				forms[f] = true
			}
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
	var percent []string
	for _, f := range list {
		if l := lowerPercent(f); strings.Contains(l, "%") && !slices.Contains(percent, l) {
			percent = append(percent, l)
		}
	}
	return &Redactor{r: strings.NewReplacer(pairs...), forms: list, percent: percent}
}

// secretLines returns the lines of a multi-line secret worth masking on
// their own: output is cut into lines before anyone reads it, so a PEM
// key printed whole shows up one line at a time. In a PEM block, the
// armour lines ("-----BEGIN RSA PRIVATE KEY-----") and header lines
// ("Proc-Type: 4,ENCRYPTED") are the same in every key and are left out.
func secretLines(secret string) []string {
	if !strings.ContainsAny(secret, "\n\r") {
		return nil
	}
	isPEM := strings.Contains(secret, "-----BEGIN ")
	var out []string
	for l := range strings.FieldsFuncSeq(secret, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(l)
		armour := isPEM && strings.HasPrefix(l, "-----") && strings.HasSuffix(l, "-----")
		header := isPEM && strings.Contains(l, ": ")
		if !armour && !header && len(l) >= MinSecretLen {
			out = append(out, l)
		}
	}
	return out
}

// Forms returns the strings that reveal secret: the secret itself, its URL
// encodings (with upper and lower case hex digits), its hex encodings, its
// JSON string escapings, and its base64 encodings, padded and not, at each
// of the three alignments a secret can have inside a longer encoded string
// (only the characters that depend on the secret alone; fragments shorter
// than six characters are left out).
func Forms(secret string) []string {
	forms := []string{secret}
	add := func(f string) {
		if f != "" && !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	for _, f := range []string{url.QueryEscape(secret), url.PathEscape(secret), strings.ReplaceAll(url.QueryEscape(secret), "+", "%20")} {
		add(f)
		add(lowerPercent(f))
	}
	add(hex.EncodeToString([]byte(secret)))
	add(strings.ToUpper(hex.EncodeToString([]byte(secret))))
	for _, f := range jsonForms(secret) {
		add(f)
	}
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
	out = append(out, enc.EncodeToString(secret), enc.WithPadding(base64.NoPadding).EncodeToString(secret))
	return out
}

// lowerPercent returns s with the hex digits of its %XX escapes in lower
// case ("%2f"), as some encoders write them.
func lowerPercent(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// jsonForms returns secret as it appears inside a JSON string: as
// encoding/json writes it (with and without HTML escaping, "<" as
// "\u003c") and with "/" escaped as "\/", as some other encoders do.
func jsonForms(secret string) []string {
	var out []string
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(secret) // a string always encodes
		q := strings.TrimSuffix(strings.TrimSpace(b.String()), "\"")[1:]
		out = append(out, q, strings.ReplaceAll(q, "/", `\/`))
	}
	return out
}

// Redact returns s with every form of every secret replaced by Mask.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.mixedPercent(r.r.Replace(s))
}

// mixedPercent masks the URL-escaped forms whose %XX escapes mix upper and
// lower case hex digits ("%2F…%3a"), which no single form matches: a form
// holding escapes is compared with the hex digits of its escapes folded
// (foldPercentAt).
func (r *Redactor) mixedPercent(s string) string {
	if len(r.percent) == 0 || !strings.Contains(s, "%") {
		return s
	}
	var spans [][2]int
	for _, f := range r.percent {
		for i := 0; i+len(f) <= len(s); i++ {
			if foldPercentAt(s, i, f) {
				spans = append(spans, [2]int{i, i + len(f)})
			}
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp[0] < last { // overlaps the span masked before
			last = max(last, sp[1])
			continue
		}
		b.WriteString(s[last:sp[0]])
		b.WriteString(Mask)
		last = sp[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// foldPercentAt reports whether form occurs in s at i, the two hex digits
// after each "%" of form compared without regard to case.
func foldPercentAt(s string, i int, form string) bool {
	if i+len(form) > len(s) {
		return false
	}
	for k := 0; k < len(form); k++ {
		if form[k] == '%' && k+2 < len(form) {
			if s[i+k] != '%' || lowerHex(s[i+k+1]) != lowerHex(form[k+1]) || lowerHex(s[i+k+2]) != lowerHex(form[k+2]) {
				return false
			}
			k += 2
			continue
		}
		if s[i+k] != form[k] {
			return false
		}
	}
	return true
}

// Overlap is how far past a cut Cut needs to see: the longest masked
// form, less one byte. It is 0 when r masks nothing.
func (r *Redactor) Overlap() int {
	if r.Empty() {
		return 0
	}
	return len(r.forms[0]) - 1
}

// Cut returns where to cut line, too long to pass on whole, so that the
// first piece is at most max bytes and each piece can be redacted on its
// own: the largest cut <= max (and > 0, when there is one) that no
// occurrence of a masked form spans and that does not split a UTF-8
// character. line must hold at least max+r.Overlap() bytes, so that every
// form that begins before max is seen whole.
func (r *Redactor) Cut(line []byte, max int) int {
	cut := runeCut(line, max)
	for cut > 0 {
		start := r.spanning(line, cut)
		if start < 0 {
			return cut
		}
		cut = runeCut(line, start)
	}
	// Occurrences overlap one another back to the start of the line (a
	// form that overlaps itself, repeated): no cut keeps them all whole.
	return runeCut(line, max)
}

// spanning returns the earliest start of an occurrence of a masked form
// that begins before cut and ends after it, or -1.
func (r *Redactor) spanning(line []byte, cut int) int {
	first := -1
	if r.Empty() {
		return first
	}
	for _, f := range r.forms {
		lo, hi := max(cut-len(f)+1, 0), min(cut+len(f)-1, len(line))
		if lo >= hi {
			continue
		}
		i := bytes.Index(line[lo:hi], []byte(f))
		if i < 0 && strings.Contains(f, "%") {
			// Mixed-case escapes, as Redact masks them.
			for j := lo; j+len(f) <= hi; j++ {
				if foldPercentAt(string(line[j:j+len(f)]), 0, f) {
					i = j - lo
					break
				}
			}
		}
		if i >= 0 && (first < 0 || lo+i < first) {
			first = lo + i
		}
	}
	return first
}

// runeCut returns the largest cut <= max that does not split a UTF-8
// character (or max itself if no character starts near it).
func runeCut(s []byte, max int) int {
	if max >= len(s) {
		return len(s)
	}
	for cut := max; cut > 0 && cut > max-utf8.UTFMax; cut-- {
		if utf8.RuneStart(s[cut]) {
			return cut
		}
	}
	return max
}

// RedactTruncated is Redact for text that may have been cut short (the
// start of a line too long to keep whole): a secret cut in two is not
// masked by Redact, so the end of s is masked too when it is the start,
// MinSecretLen bytes or more, of a masked form.
func (r *Redactor) RedactTruncated(s string) string {
	s = r.Redact(s)
	if r.Empty() {
		return s
	}
	cut := len(s)
	for _, f := range r.forms {
		for n := min(len(f)-1, len(s)); n >= MinSecretLen && len(s)-n < cut; n-- {
			if strings.HasSuffix(s, f[:n]) {
				cut = len(s) - n
				break
			}
		}
	}
	if cut == len(s) {
		return s
	}
	return s[:cut] + Mask
}

// Empty reports whether r masks nothing.
func (r *Redactor) Empty() bool {
	return r == nil || r.r == nil
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
// unless dst fails. A line longer than maxPartial is passed on in pieces,
// cut where no secret is split (see Redactor.Cut).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	var b strings.Builder
	if i := bytes.LastIndexByte(w.buf, '\n'); i >= 0 {
		b.WriteString(w.r.Redact(string(w.buf[:i+1])))
		w.buf = w.buf[:copy(w.buf, w.buf[i+1:])]
	}
	for len(w.buf) >= maxPartial+w.r.Overlap() {
		cut := w.r.Cut(w.buf, maxPartial)
		b.WriteString(w.r.Redact(string(w.buf[:cut])))
		w.buf = w.buf[:copy(w.buf, w.buf[cut:])]
	}
	if b.Len() == 0 {
		return len(p), nil
	}
	if _, err := io.WriteString(w.dst, b.String()); err != nil {
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
