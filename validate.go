package slipway

import (
	"net/url"
	"path"
	"regexp"
	"strings"
)

var projectNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateProjectName checks that name can serve as a task queue suffix,
// an image repository name and a directory name.
func ValidateProjectName(name string) error {
	if !projectNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid project name %q: use 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit", name)
	}
	return nil
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ValidCommit reports whether s is a full 40-hex-digit commit SHA.
func ValidCommit(s string) bool { return shaRE.MatchString(s) }

// ValidateRef checks a git ref or branch name the way git check-ref-format
// would, rejecting what could confuse git or a shell.
func ValidateRef(ref string) error {
	bad := ref == "" || len(ref) > 255 || strings.Contains(ref, "..") ||
		strings.HasPrefix(ref, "-") || strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") ||
		strings.HasSuffix(ref, ".lock") || strings.HasSuffix(ref, ".") || strings.Contains(ref, "@{") ||
		strings.Contains(ref, "//")
	for _, r := range ref {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			bad = true
		}
	}
	if bad {
		return Errorf(EINVALID, "invalid git ref %q", ref)
	}
	return nil
}

// ValidateRelPath checks that p (a Dockerfile or context path) stays inside
// the repository: relative, without "..", without control characters, at
// most 1024 bytes. Symlinks are the builder's to check (the repository is
// not at hand here).
func ValidateRelPath(what, p string) error {
	clean := path.Clean(p)
	bad := p == "" || len(p) > 1024 || path.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../")
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			bad = true
		}
	}
	if bad {
		return Errorf(EINVALID, "invalid %s %q: it must be a path inside the repository", what, p)
	}
	return nil
}

// ValidateRepoURL checks that u is a git URL the builder could fetch:
// file://, http(s)://, ssh://, git:// or scp-like user@host:path.
func ValidateRepoURL(u string) error {
	if u == "" || strings.ContainsAny(u, "\x00\n\r ") || strings.HasPrefix(u, "-") {
		return Errorf(EINVALID, "invalid repository URL %q", u)
	}
	if pu, err := url.Parse(u); err == nil && pu.Scheme != "" {
		switch pu.Scheme {
		case "file", "http", "https", "ssh", "git":
			return nil
		}
		return Errorf(EINVALID, "invalid repository URL %q: scheme %q is not supported (use file, http, https, ssh or git)", u, pu.Scheme)
	}
	if strings.Contains(u, "@") && strings.Contains(u, ":") {
		return nil // scp-like: git@github.com:owner/repo.git
	}
	return Errorf(EINVALID, "invalid repository URL %q: use a URL such as https://github.com/owner/repo.git or file:///path/to/repo", u)
}

// NormalizeRepoURL reduces the many spellings of one repository (clone URL,
// HTML URL, SSH URL, with or without .git or a trailing slash) to one key
// used to match webhook deliveries to projects: "host/owner/repo" for
// remote URLs, the cleaned path for file URLs.
func NormalizeRepoURL(u string) string {
	u = strings.TrimSpace(u)
	if strings.HasPrefix(u, "file://") {
		return "file://" + path.Clean(strings.TrimPrefix(u, "file://"))
	}
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		u = pu.Hostname() + pu.Path
	} else if at := strings.Index(u, "@"); at >= 0 && strings.Contains(u[at:], ":") {
		host, p, _ := strings.Cut(u[at+1:], ":")
		u = host + "/" + strings.TrimPrefix(p, "/") // host:/abs/path is ssh://host/abs/path
	}
	u = strings.ToLower(u)
	return strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
}

// MaxWebhookSecretBytes bounds a project's webhook secret.
const MaxWebhookSecretBytes = 1024

// ValidateWebhookSecret rejects webhook secrets a user could not paste into
// a forge: longer than MaxWebhookSecretBytes, with leading or trailing
// spaces, or with control characters.
func ValidateWebhookSecret(s string) error {
	if len(s) > MaxWebhookSecretBytes || strings.TrimSpace(s) != s || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Errorf(EINVALID, "invalid webhook secret: use at most %d printable characters without leading or trailing spaces", MaxWebhookSecretBytes)
	}
	return nil
}
