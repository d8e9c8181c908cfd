package registry

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/gorilla/mux"
)

// Action is what a request does to a repository.
type Action string

const (
	// Pull reads manifests, blobs and tags (GET, HEAD).
	Pull Action = "pull"
	// Push uploads blobs and puts manifests and tags (POST, PUT, PATCH,
	// and cancelling an upload).
	Push Action = "push"
	// Delete removes a manifest or a blob (DELETE).
	Delete Action = "delete"
)

// Rule grants Actions on the repositories Repo names.
type Rule struct {
	// Repo is a repository name or a pattern: "*" matches any run of
	// characters, "/" included ("base/*" is every repository under base/,
	// "*" every repository).
	Repo string
	// Actions are what the rule allows; Push does not imply Pull here
	// (the caller lists both).
	Actions []Action
}

// Access is what one credential may do. Any valid credential may ping
// /v2/ and list the catalog.
type Access struct {
	// Who names the credential's holder in the log, e.g. "agent of demo".
	Who string
	// Rules are the grants; a request is allowed when one rule allows it.
	Rules []Rule
}

// Allows reports whether a allows action on the repository repo.
func (a *Access) Allows(repo string, action Action) bool {
	if a == nil {
		return false
	}
	for _, r := range a.Rules {
		if !MatchRepo(r.Repo, repo) {
			continue
		}
		for _, x := range r.Actions {
			if x == action {
				return true
			}
		}
	}
	return false
}

// MatchRepo reports whether the repository name repo matches pattern, in
// which "*" matches any run of characters, "/" included.
func MatchRepo(pattern, repo string) bool {
	first, rest, wild := strings.Cut(pattern, "*")
	if !wild {
		return pattern == repo
	}
	if !strings.HasPrefix(repo, first) {
		return false
	}
	repo = repo[len(first):]
	// Any split of the rest of repo may match the rest of the pattern.
	for i := 0; i <= len(repo); i++ {
		if MatchRepo(rest, repo[i:]) {
			return true
		}
	}
	return false
}

// need is what a request needs: an action on a repository, and for a
// cross-repository blob mount also Pull on the repository it mounts from.
// An empty repo is a ping of /v2/ or the catalog, which any valid
// credential may do.
type need struct {
	repo, from string
	action     Action
}

// classify parses req with distribution's router. ok is false for a path
// outside the API (distribution answers 404 to it, after the credential
// check).
func classify(req *http.Request) (n need, ok bool) {
	var m mux.RouteMatch
	if !v2.Router().Match(req, &m) || m.Route == nil {
		return need{}, false
	}
	route := m.Route.GetName()
	switch route {
	case v2.RouteNameBase, v2.RouteNameCatalog:
		return need{action: Pull}, true
	}
	n.repo = m.Vars["name"]
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		n.action = Pull
	case http.MethodDelete:
		n.action = Delete
		if route == v2.RouteNameBlobUpload || route == v2.RouteNameBlobUploadChunk {
			// Cancelling one's own upload.
			n.action = Push
		}
	default:
		n.action = Push
		// Read as distribution reads them (FormValue: the query or a
		// form body), so that a mount cannot hide its source.
		if route == v2.RouteNameBlobUpload && req.FormValue("mount") != "" {
			n.from = req.FormValue("from")
		}
	}
	return n, n.repo != ""
}

// secret returns the credential req presents: the password of basic auth
// or a bearer token; "" if none.
func secret(req *http.Request) string {
	scheme, cred, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok {
		return ""
	}
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "bearer":
		return cred
	case "basic":
		b, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return ""
		}
		_, pass, _ := strings.Cut(string(b), ":")
		return pass
	}
	return ""
}

// Realm is the basic-auth realm the registry's 401 answers name; the
// challenge makes podman, docker and skopeo send the password of their
// login.
const Realm = "slipway"

// ServeHTTP checks the request's credential and what it may do, and hands
// the request to distribution.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s := secret(req)
	if s == "" {
		r.unauthorized(w, "a credential is required: log in with a Slipway token as the password")
		return
	}
	access, err := r.cfg.Authenticate(req.Context(), s)
	if err != nil || access == nil {
		r.unauthorized(w, "invalid credential")
		return
	}
	if repo, action, denied := deniedBy(req, access); denied {
		r.cfg.Logger.Info("registry: request denied", "who", access.Who, "repository", repo, "action", action)
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDenied.WithMessage(
			string(action)+" access to "+repo+" is denied for this credential"))
		return
	}
	r.app.ServeHTTP(w, req)
}

// deniedBy says which repository and action access lacks for req, if any.
func deniedBy(req *http.Request, access *Access) (repo string, action Action, denied bool) {
	n, ok := classify(req)
	switch {
	case !ok || n.repo == "":
		return "", "", false
	case !access.Allows(n.repo, n.action):
		return n.repo, n.action, true
	case n.from != "" && !access.Allows(n.from, Pull):
		return n.from, Pull, true
	}
	return "", "", false
}

func (r *Registry) unauthorized(w http.ResponseWriter, why string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithDetail(why))
}
