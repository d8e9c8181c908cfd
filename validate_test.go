package slipway

import (
	"strings"
	"testing"
)

func TestNormalizeRepoURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://github.com/acme/app.git", "github.com/acme/app"},
		{"https://github.com/Acme/App", "github.com/acme/app"},
		{"https://github.com/acme/app/", "github.com/acme/app"},
		{"https://github.com/acme/app.git/", "github.com/acme/app"},
		{"https://github.com/Acme/App.GIT", "github.com/acme/app"},
		{"https://user@github.com/acme/app", "github.com/acme/app"},
		{"git@github.com:acme/app.git", "github.com/acme/app"},
		{"git@github.com:acme/app", "github.com/acme/app"},
		{"ssh://git@github.com/acme/app.git", "github.com/acme/app"},
		{"ssh://git@github.com:22/acme/app.git", "github.com/acme/app"},
		{"git://github.com/acme/app.git", "github.com/acme/app"},
		// scp-like with an absolute path is the same repository as ssh://host/path.
		{"git@git.example.com:/srv/git/app.git", "git.example.com/srv/git/app"},
		{"ssh://git@git.example.com/srv/git/app.git", "git.example.com/srv/git/app"},
		{" https://github.com/acme/app ", "github.com/acme/app"},
		{"file:///srv/git/app/", "file:///srv/git/app"},
		{"file:///srv/git/App.git", "file:///srv/git/App.git"},
	}
	for _, tt := range tests {
		if got := NormalizeRepoURL(tt.in); got != tt.want {
			t.Errorf("NormalizeRepoURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidateRelPath(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"Dockerfile", true},
		{"docker/Dockerfile.prod", true},
		{".", true},
		{"a/../b", true},
		{"./web", true},
		{"", false},
		{"../../etc/passwd", false},
		{"a/../../etc", false},
		{"..", false},
		{"/etc/passwd", false},
		{"Docker\x00file", false},
		{"Dockerfile\nRUN x", false},
		{"Docker\x1b[31mfile", false},
		{"Docker\tfile", false},
		{strings.Repeat("a/", 600), false},
	}
	for _, tt := range tests {
		err := ValidateRelPath("Dockerfile path", tt.p)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateRelPath(%q) = %v, want ok %v", tt.p, err, tt.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ValidateRelPath(%q) code %s, want %s", tt.p, ErrorCode(err), EINVALID)
		}
	}
}
