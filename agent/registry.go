package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ci/slipway/builder"
)

// The agent talks to the image registry itself (go-containerregistry) for
// two small things podman would take a whole process and a build step
// for: reading the digest a tag points to (the identity of a FROM image),
// and putting the deployment's labels (and the config-only steps a
// Dockerfile ends with) on a pushed image.
//
// Credentials are those of the agent's auth file (registryAccess.authFile,
// which buildah is given too), then the builder's own, as podman finds
// them: the Docker config and the containers auth.json. With TLS
// verification off (the embedded registry on loopback, or
// --registry-insecure) plain HTTP is allowed and certificates are not
// checked, like podman's --tls-verify=false.

// registryAccess is how the agent reaches registries.
type registryAccess struct {
	// tlsVerify requires TLS with verified certificates.
	tlsVerify bool
	// authFile is a containers-auth.json file with the agent's registry
	// credential (see writeRegistryAuth); "" for none.
	authFile string
}

// registryTimeout bounds one registry request.
const registryTimeout = 30 * time.Second

// registryRef parses ref and returns the options to reach its registry,
// over a transport of the caller's own: closeIdle closes its idle
// connections, and so ends their goroutines, once the caller is done.
func registryRef(ref string, reg registryAccess) (_ name.Reference, _ []remote.Option, closeIdle func(), _ error) {
	var nopts []name.Option
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	if !reg.tlsVerify {
		nopts = append(nopts, name.Insecure)
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --tls-verify=false asks for exactly this
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	keys := authn.NewMultiKeychain(authFileKeychain(reg.authFile), authn.DefaultKeychain)
	return r, []remote.Option{remote.WithAuthFromKeychain(keys), remote.WithTransport(tr)}, tr.CloseIdleConnections, nil
}

// registryDigest returns the manifest digest ref (host/name:tag or
// host/name@digest) points to, asking its registry. References without a
// registry host are not resolved: nothing outside this machine is asked.
func registryDigest(ctx context.Context, ref string, reg registryAccess) (string, error) {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d, nil
	}
	host, _, ok := strings.Cut(ref, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return "", fmt.Errorf("%s names no registry host", ref)
	}
	r, ropts, closeIdle, err := registryRef(ref, reg)
	if err != nil {
		return "", err
	}
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	desc, err := remote.Head(r, append(ropts, remote.WithContext(ctx))...)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// configureInRegistry puts labels on the image the tag ref names in its
// registry, after applying the config-only steps of tail
// (configTail): a new image config and a new manifest with the same
// layers, put under the same tag. It returns the new manifest's digest.
// Only the config and the manifest travel; the layers are already there.
//
// Labels are set here rather than in the build because a label whose
// value changes every deployment (its id, its commit) would make a build
// step that never hits the cache, and podman 4.3 spends a second or more
// on a build of its own for a LABEL.
func configureInRegistry(ctx context.Context, ref string, labels map[string]string, tail *builder.ConfigTail, reg registryAccess) (string, error) {
	r, ropts, closeIdle, err := registryRef(ref, reg)
	if err != nil {
		return "", err
	}
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	ropts = append(ropts, remote.WithContext(ctx))
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("read the config of %s: %w", ref, err)
	}
	cf = cf.DeepCopy()
	if err := applyConfig(cf, tail, time.Now().UTC()); err != nil {
		return "", fmt.Errorf("apply %s: %w", describeTail(tail), err)
	}
	if cf.Config.Labels == nil {
		cf.Config.Labels = make(map[string]string, len(labels))
	}
	maps.Copy(cf.Config.Labels, labels)
	labelled, err := mutate.ConfigFile(img, cf)
	if err != nil {
		return "", fmt.Errorf("label %s: %w", ref, err)
	}
	if err := remote.Write(r, labelled, ropts...); err != nil {
		return "", fmt.Errorf("write the labelled %s: %w", ref, err)
	}
	d, err := labelled.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// registryImage returns the manifest digest ref points to and the image's
// config (for the variables and ONBUILD triggers of the stages that start
// from it), asking its registry; as registryDigest, references without a
// registry host are not resolved.
func registryImage(ctx context.Context, ref string, reg registryAccess) (string, *docker.Config, error) {
	host, _, ok := strings.Cut(ref, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return "", nil, fmt.Errorf("%s names no registry host", ref)
	}
	r, ropts, closeIdle, err := registryRef(ref, reg)
	if err != nil {
		return "", nil, err
	}
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	desc, err := remote.Get(r, append(ropts, remote.WithContext(ctx))...)
	if err != nil {
		return "", nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", nil, fmt.Errorf("read the config of %s: %w", ref, err)
	}
	cfg := toDockerConfig(cf.Config)
	return desc.Digest.String(), &cfg, nil
}
