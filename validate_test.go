package slipway

import "testing"

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
