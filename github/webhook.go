// Package github is Slipway's webhook edge: the HTTP handler behind
// POST /webhooks/github that turns a forge's signed push delivery into a
// deployment. It accepts GitHub deliveries and the GitHub-compatible ones
// Gitea, Forgejo and Gogs send.
//
// Each project also has its own URL, POST /webhooks/github/<hook-id>
// (slipway.Project.HookID): there the handler checks the signature against
// that project's secret before it parses any JSON. On the shared URL it
// must parse the payload first to learn the repository; an unregistered
// repository is then answered as a wrong signature is (401), so neither
// URL tells which repositories are registered.
//
// The handler caps the body, checks the HMAC-SHA256 signature against the
// webhook secret of each project registered for the delivery's repository,
// and hands verified pushes to a slipway.Deployer with their delivery id,
// which decides whether the push needs a new deployment (not for a
// redelivery, a replay, or a push older than the webhook window,
// HandlerConfig.MaxAge, whose commit was already deployed), records it and
// starts its workflow. A verified pull_request delivery goes to a
// slipway.Previewer (HandlerConfig.Previews), which builds the pull
// request's head as a preview or removes it (see pullRequest). It never
// writes to the store itself and does
// nothing for a delivery it rejects; it must not build, fetch or wait for
// anything, so it answers within milliseconds.
package github

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
	"time"

	gh "github.com/google/go-github/v84/github"

	"github.com/slipway-ci/slipway"
)

// Path is where the server mounts the handler NewHandler returns: the
// shared URL, and Path + "/" (a project's own URL, Path/<hook-id>).
const Path = "/webhooks/github"

// DefaultMaxBodyBytes is GitHub's own cap on a webhook payload: 25 MiB.
const DefaultMaxBodyBytes = 25 << 20

// MaxRepositories bounds the repositories an installation delivery may
// list (repositories plus repositories_added): each becomes a repository
// URL the store is asked about. GitHub sends at most a few hundred; a
// delivery listing more is refused with 413.
const MaxRepositories = 1000

// MaxCommits bounds a push delivery's commits list. GitHub documents at
// most 2048 commits in a push payload, Gitea and Forgejo send fewer; a
// delivery listing more is refused with 413.
const MaxCommits = 10000

// DefaultReadTimeout is HandlerConfig.ReadTimeout's default: how long a
// delivery's body may take to arrive. GitHub gives up on a delivery after
// 10 s; a 25 MiB body at 1 MB/s still arrives in time.
const DefaultReadTimeout = 30 * time.Second

// deployTimeout bounds the Deployer call. The call is detached from the
// request's context: once a delivery is verified, a forge that hangs up
// (GitHub waits 10 s) must not leave a deployment half-created.
const deployTimeout = 30 * time.Second

// zeroSHA is the "after" of a push that deletes a ref.
const zeroSHA = "0000000000000000000000000000000000000000"

// DefaultMaxAge is the webhook window when HandlerConfig.MaxAge is zero
// (and `slipway server --webhook-max-age`'s default).
const DefaultMaxAge = time.Hour

// HandlerConfig configures NewHandler. Store and Deployer are required.
type HandlerConfig struct {
	// Store finds the projects registered for a delivery's repository
	// (ProjectsByRepo). The handler only reads from it.
	Store slipway.Store
	// Deployer records the deployment of a verified push and starts its
	// workflow; it decides which deliveries need none (redeliveries,
	// replays, stale pushes) and says so in its outcome.
	Deployer slipway.Deployer
	// MaxBodyBytes caps the request body; larger deliveries get 413.
	// Zero or less means DefaultMaxBodyBytes (25 MiB, GitHub's limit).
	MaxBodyBytes int64
	// ReadTimeout bounds how long the handler waits for a delivery's body,
	// so a client dribbling bytes cannot hold a connection (and its
	// goroutine) for ever: past it the delivery gets 408. Zero or less
	// means DefaultReadTimeout. The server's ReadHeaderTimeout bounds
	// the headers.
	ReadTimeout time.Duration
	// AppSecret is the optional webhook secret of a GitHub App. A delivery
	// signed with it is accepted for every project registered for its
	// repository, and it is the only way to verify deliveries that name no
	// repository (installation events of an app installed on "all
	// repositories"). Empty disables it: each project's own
	// WebhookSecret is then the only secret accepted.
	AppSecret string
	// MaxAge is the webhook window: a push delivery whose push happened
	// longer ago than this (by the payload's repository.pushed_at, else its
	// head commit's timestamp) is passed to the Deployer as stale, and
	// builds nothing when its commit was already
	// deployed from the same branch, whatever its delivery id; one whose
	// commit is new still builds. It stops a captured delivery from being
	// replayed later to roll a project back. Zero means DefaultMaxAge; a
	// negative value turns the check off (a replay under a new id of a
	// commit among the project's recent webhook deployments still builds
	// nothing: the Deployer sees to that).
	MaxAge time.Duration
	// Previews, if set, opens and closes pull requests' previews
	// (pull_request deliveries); nil (a server that serves no apps)
	// answers those deliveries 202 and does nothing.
	Previews slipway.Previewer
	// Logger receives one record per delivery. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock deliveries' ages are measured with; nil means
	// time.Now.
	Now func() time.Time
}

// Response is the JSON body of every answer the handler gives.
type Response struct {
	// Message says what happened, and for an error what to do about it.
	Message string `json:"message"`
	// Delivery echoes the delivery id once the headers were read.
	Delivery string `json:"delivery,omitempty"`
	// Deployment is the id of the (first) deployment the delivery created
	// or, for a redelivery, created earlier.
	Deployment string `json:"deployment,omitempty"`
	// Deployments lists every deployment id when the repository is
	// registered as several projects.
	Deployments []string `json:"deployments,omitempty"`
}

type handler struct {
	store     slipway.Store
	deployer  slipway.Deployer
	previews  slipway.Previewer
	maxBody   int64
	readTime  time.Duration
	appSecret string
	maxAge    time.Duration
	log       *slog.Logger
	now       func() time.Time
	// decoy is a random key authenticate computes an HMAC with when no
	// project could have signed a delivery.
	decoy string
}

// NewHandler returns the handler for POST /webhooks/github (see Path).
// It panics if cfg.Store or cfg.Deployer is nil, a programming error.
func NewHandler(cfg HandlerConfig) http.Handler {
	if cfg.Store == nil || cfg.Deployer == nil {
		panic("github.NewHandler: Store and Deployer are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	return &handler{
		store:     cfg.Store,
		deployer:  cfg.Deployer,
		previews:  cfg.Previews,
		maxBody:   cfg.MaxBodyBytes,
		readTime:  cfg.ReadTimeout,
		appSecret: cfg.AppSecret,
		maxAge:    cfg.MaxAge,
		log:       cfg.Logger,
		now:       cfg.Now,
		decoy:     rand.Text(),
	}
}

// ServeHTTP answers one delivery. A panic below it becomes a logged 500
// "internal error": the forge never sees a Go stack.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("webhook handler panicked", "panic", v, "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, Response{Message: "internal error"})
		}
	}()
	d := &delivery{}
	status, resp := h.handle(w, r, d)
	resp.Delivery = d.id
	attrs := []any{"status", status, "event", d.event, "delivery", d.id, "message", resp.Message}
	if len(resp.Deployments) > 0 {
		attrs = append(attrs, "deployments", resp.Deployments)
	}
	if status >= 500 {
		h.log.Error("webhook delivery failed", attrs...)
	} else {
		h.log.Info("webhook delivery", attrs...)
	}
	writeJSON(w, status, resp)
}

// delivery is what the handler learnt about a request so far, for logs.
type delivery struct {
	event string
	id    string
}

func (h *handler) handle(w http.ResponseWriter, r *http.Request, d *delivery) (int, Response) {
	body, form, status, resp := h.read(w, r, d)
	if status != 0 {
		return status, resp
	}
	if id, ok := hookID(r.URL.Path); ok {
		return h.handleHook(r, d, id, body, form)
	}
	env, ev, known, status, resp := parse(d, body, form)
	if status != 0 {
		return status, resp
	}
	urls := env.repoURLs()
	var projects []*slipway.Project
	if len(urls) > 0 {
		var err error
		projects, err = h.store.ProjectsByRepo(r.Context(), urls)
		if err != nil {
			return h.errorReply(err, "find projects for "+urls[0])
		}
	}
	if len(projects) == 0 && h.appSecret == "" && len(urls) == 0 {
		if !known {
			// Nothing to verify it with, and nothing would be done with it.
			return reply(http.StatusAccepted, "event %q ignored: Slipway acts on push events", d.event)
		}
		return reply(http.StatusNotFound, "this %s delivery names no repository, so no project's webhook secret can verify it: add the webhook to the repository, or configure the GitHub App webhook secret on the Slipway server", d.event)
	}
	// An unregistered repository gets the answer a wrong signature gets
	// (authenticate with no project fails as one does), so the endpoint
	// does not tell who asks which repositories are registered.
	projects, status, resp = h.authenticate(r, body, projects, h.appSecret)
	if status != 0 {
		return status, resp
	}
	return h.dispatch(r.Context(), d, ev, urls, projects)
}

// handleHook answers a delivery to a project's own webhook URL,
// Path/<id>: it checks the signature against that project's secret
// before it parses any JSON, and answers an unknown id as it answers a
// wrong signature. The app secret is not accepted there: a GitHub App has
// one webhook URL, the shared one.
func (h *handler) handleHook(r *http.Request, d *delivery, id string, body []byte, form bool) (int, Response) {
	var projects []*slipway.Project
	p, err := h.store.ProjectByHookID(r.Context(), id)
	switch {
	case err == nil:
		projects = []*slipway.Project{p}
	case slipway.ErrorCode(err) != slipway.ENOTFOUND:
		return h.errorReply(err, "find the project of a webhook URL")
	}
	projects, status, resp := h.authenticate(r, body, projects, "")
	if status != 0 {
		return status, resp
	}
	_, ev, _, status, resp := parse(d, body, form)
	if status != 0 {
		return status, resp
	}
	// The project is the one the URL names, whatever repository the
	// payload says it is about (a mirror's project may be registered
	// with another URL).
	return h.dispatch(r.Context(), d, ev, []string{projects[0].Repo}, projects)
}

// parse decodes a delivery's payload (see payloadOf): the envelope naming
// its repository and, for the events Slipway knows (known), the event. A
// non-zero status (400, or 413 past MaxRepositories or MaxCommits)
// refuses it.
func parse(d *delivery, body []byte, form bool) (env envelope, ev any, known bool, status int, resp Response) {
	payload, status, resp := payloadOf(body, form)
	if status != 0 {
		return env, nil, false, status, resp
	}
	if err := decodeObject(payload, &env); err != nil {
		status, resp = reply(http.StatusBadRequest, "malformed %s payload: %v", d.event, err)
		return env, nil, false, status, resp
	}
	if status, resp = env.bounded(); status != 0 {
		return env, nil, false, status, resp
	}
	ev, known, err := parseEvent(d.event, payload)
	if err != nil {
		status, resp = reply(http.StatusBadRequest, "malformed %s payload: %v", d.event, err)
		return env, nil, known, status, resp
	}
	status, resp = bounded(ev)
	return env, ev, known, status, resp
}

// hookID returns the project webhook URL id of a request to Path/<id>;
// ok is false for the shared URL (Path, or Path/). An id with a slash in
// it is returned as it is, and matches no project.
func hookID(urlPath string) (id string, ok bool) {
	id, ok = strings.CutPrefix(urlPath, Path+"/")
	return id, ok && id != ""
}

// read checks a delivery's method, content type and headers, and reads
// its body (what the signature covers); form says the body is
// form-encoded, its JSON payload in a field (see parse). It decodes
// nothing. A non-zero status is the reply to a delivery it refuses.
func (h *handler) read(w http.ResponseWriter, r *http.Request, d *delivery) (body []byte, form bool, status int, resp Response) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		status, resp = reply(http.StatusMethodNotAllowed, "method %s is not allowed: webhook deliveries are POST requests to %s", r.Method, Path)
		return nil, false, status, resp
	}
	form, ok := formEncoded(r.Header.Get("Content-Type"))
	if !ok {
		status, resp = reply(http.StatusUnsupportedMediaType, "unsupported Content-Type %q: set the webhook's content type to application/json", r.Header.Get("Content-Type"))
		return nil, false, status, resp
	}
	if status, resp = h.readHeaders(r, d); status != 0 {
		return nil, false, status, resp
	}
	body, err := h.readBody(w, r)
	if err != nil {
		var timeout interface{ Timeout() bool }
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status, resp = reply(http.StatusRequestEntityTooLarge, "payload is larger than %d bytes", h.maxBody)
		} else if errors.As(err, &timeout) && timeout.Timeout() {
			status, resp = reply(http.StatusRequestTimeout, "the payload did not arrive within %s", h.readTime)
		} else {
			status, resp = reply(http.StatusBadRequest, "could not read the request body")
		}
		return nil, false, status, resp
	}
	return body, form, 0, Response{}
}

// payloadOf returns a delivery's JSON payload: its body, or a
// form-encoded body's payload field (the signature covers the raw form
// body, not the decoded field). A non-zero status refuses it.
func payloadOf(body []byte, form bool) ([]byte, int, Response) {
	if !form {
		return body, 0, Response{}
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil || vals.Get("payload") == "" {
		status, resp := reply(http.StatusBadRequest, "form-encoded delivery without a payload field: set the webhook's content type to application/json")
		return nil, status, resp
	}
	return []byte(vals.Get("payload")), 0, Response{}
}

// readBody reads r's body, up to h.maxBody bytes and until h.readTime
// from now: past it the read fails with a timeout error.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.readTime)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("set the body's read deadline: %w", err)
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
}

// readHeaders sets d's event and id from the forge's headers.
func (h *handler) readHeaders(r *http.Request, d *delivery) (int, Response) {
	d.event = firstHeader(r, "X-GitHub-Event", "X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event")
	if d.event == "" {
		return reply(http.StatusBadRequest, "missing X-GitHub-Event header: %s only accepts webhook deliveries from GitHub, Gitea, Forgejo or Gogs", Path)
	}
	id := firstHeader(r, "X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery")
	if id == "" {
		return reply(http.StatusBadRequest, "missing X-GitHub-Delivery header: a delivery id is needed to recognise redeliveries")
	}
	if !validDeliveryID(id) {
		return reply(http.StatusBadRequest, "invalid X-GitHub-Delivery header %q: want at most 128 printable characters without spaces", id)
	}
	d.id = id
	return 0, Response{}
}

// dispatch acts on a verified delivery's event.
func (h *handler) dispatch(ctx context.Context, d *delivery, ev any, urls []string, projects []*slipway.Project) (int, Response) {
	switch ev := ev.(type) {
	case *gh.PingEvent:
		if len(projects) == 0 {
			return reply(http.StatusOK, "pong: the webhook's signature is valid")
		}
		return reply(http.StatusOK, "pong: the webhook is set up; pushes to %s deploy %s", firstOr(urls, projects[0].Repo), names(projects))
	case *gh.PushEvent:
		if len(projects) == 0 {
			return noProject(firstOr(urls, "this delivery's repository"))
		}
		return h.push(ctx, ev, projects, d.id)
	case *gh.PullRequestEvent:
		if h.previews == nil {
			return reply(http.StatusAccepted, "event %q (action %q) accepted but not acted on: this server builds no previews (it serves no apps)", d.event, ev.GetAction())
		}
		if len(projects) == 0 {
			return noProject(firstOr(urls, "this delivery's repository"))
		}
		return h.pullRequest(ctx, ev, projects, d.id)
	case *gh.InstallationEvent:
		return reply(http.StatusAccepted, "event %q (action %q) accepted but not acted on yet", d.event, ev.GetAction())
	}
	return reply(http.StatusAccepted, "event %q ignored: Slipway acts on push events", d.event)
}

// authenticate returns the projects whose webhook secret (or appSecret)
// signed body. When none did, it returns a non-zero 401 status, with the
// same message whether projects is empty or no secret matched.
func (h *handler) authenticate(r *http.Request, body []byte, projects []*slipway.Project, appSecret string) ([]*slipway.Project, int, Response) {
	name, value := "X-Hub-Signature-256", r.Header.Get("X-Hub-Signature-256")
	if value == "" {
		for _, alt := range []string{"X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"} {
			if value = r.Header.Get(alt); value != "" {
				name = alt
				break
			}
		}
	}
	if value == "" {
		status, resp := reply(http.StatusUnauthorized, "missing X-Hub-Signature-256 header: set the webhook's secret to the project's webhook secret so deliveries are signed")
		return nil, status, resp
	}
	sum, err := parseSignature(value, name == "X-Hub-Signature-256")
	if err != nil {
		status, resp := reply(http.StatusUnauthorized, "malformed %s header: %v", name, err)
		return nil, status, resp
	}
	if verify(appSecret, body, sum) {
		return projects, 0, Response{}
	}
	if len(projects) == 0 {
		// Spend an HMAC as a project would, so the time taken does not
		// tell an unknown repository from a wrong secret either.
		verify(h.decoy, body, sum)
	}
	var ok []*slipway.Project
	for _, p := range projects {
		if verify(p.WebhookSecret, body, sum) {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		status, resp := reply(http.StatusUnauthorized, "%s does not match the payload: the webhook's secret must be the project's webhook secret", name)
		return nil, status, resp
	}
	return ok, 0, Response{}
}

// push deploys a verified push to each of projects whose branch filter
// the pushed branch passes. The Deployer decides whether the push needs a
// new deployment (deploy.Earlier): the handler passes the delivery id
// through and says whether the push is past the webhook window.
func (h *handler) push(ctx context.Context, ev *gh.PushEvent, projects []*slipway.Project, id string) (int, Response) {
	ref, after := ev.GetRef(), ev.GetAfter()
	if err := slipway.ValidateRef(ref); err != nil {
		return reply(http.StatusBadRequest, "%s", slipway.ErrorMessage(err))
	}
	// Gitea's push payload has no "deleted" field; an all-zero "after"
	// says the same.
	if ev.GetDeleted() || after == zeroSHA {
		return reply(http.StatusAccepted, "ref %s was deleted: nothing to deploy", ref)
	}
	if strings.HasPrefix(ref, "refs/tags/") {
		return reply(http.StatusAccepted, "tag push %s ignored: Slipway deploys pushes to branches", ref)
	}
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return reply(http.StatusAccepted, "ref %s ignored: it is not a branch", ref)
	}
	if !slipway.ValidCommit(after) {
		return reply(http.StatusBadRequest, "invalid commit %q in the push's \"after\" field: want a full 40-hex-digit SHA", after)
	}

	return h.deployPush(ctx, ev, projects, pushed{id: id, ref: ref, branch: branch, after: after})
}

// pushed is a verified push of commit after to branch (ref
// refs/heads/<branch>) in delivery id.
type pushed struct {
	id, ref, branch, after string
}

// deployPush asks the Deployer to deploy ps to each of projects whose
// branch filter its branch passes, and answers with what became of it.
func (h *handler) deployPush(ctx context.Context, ev *gh.PushEvent, projects []*slipway.Project, ps pushed) (int, Response) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deployTimeout)
	defer cancel()
	pushedAt, age, stale := h.staleness(ev)
	var (
		resp             Response
		notes            []string
		firstErr         error
		created, redeliv int
	)
	for _, p := range projects {
		prefix := ""
		if len(projects) > 1 {
			prefix = "project " + p.Name + ": "
		}
		filter := strings.TrimPrefix(p.Branch, "refs/heads/")
		if filter == "" {
			// No filter set: deploy the repository's default branch.
			filter = ev.GetRepo().GetDefaultBranch()
		}
		if !branchMatches(filter, ps.branch) {
			notes = append(notes, fmt.Sprintf("%sbranch %s does not match project filter %s", prefix, ps.branch, filter))
			continue
		}
		req := slipway.DeployRequest{
			Project:    p.Name,
			Ref:        ps.ref,
			Commit:     ps.after,
			Trigger:    slipway.TriggerWebhook,
			DeliveryID: ps.id,
			Stale:      stale,
		}
		dep, outcome, err := h.deployer.Deploy(ctx, req)
		if err != nil {
			if slipway.HTTPStatus(err) == http.StatusInternalServerError {
				h.log.Error("deploy webhook push", "project", p.Name, "delivery", ps.id, "ref", ps.ref, "commit", ps.after, "err", err)
			}
			if firstErr == nil {
				firstErr = err
			}
			notes = append(notes, prefix+userMessage(err))
			continue
		}
		resp.Deployments = append(resp.Deployments, dep.ID)
		h.log.Info("webhook push", "project", p.Name, "deployment", dep.ID, "delivery", ps.id, "ref", ps.ref, "commit", ps.after, "outcome", outcome)
		if outcome.Created() {
			created++
		} else {
			redeliv++
		}
		notes = append(notes, prefix+h.outcomeNote(outcome, dep.ID, ps.id, ps.branch, ps.after, pushedAt, age))
	}
	if len(resp.Deployments) > 0 {
		resp.Deployment = resp.Deployments[0]
	}
	resp.Message = strings.Join(notes, "; ")
	switch {
	case firstErr != nil:
		return slipway.HTTPStatus(firstErr), resp
	case created == 0 && redeliv > 0:
		// A redelivery or a stale delivery of a deployed commit is 200, not
		// a 4xx: the delivery is authentic and its push is handled, so the
		// forge's delivery log should show it as delivered (GitHub and
		// Gitea do not redeliver on their own; a 4xx would only invite a
		// manual redelivery that gets the same answer).
		return http.StatusOK, resp
	}
	return http.StatusAccepted, resp
}

// outcomeNote tells the forge what became of a push to branch of commit
// after in delivery id: the deployment dep it queued, or the earlier one
// that answers it (the Deployer's outcome says why). pushedAt and age
// describe a stale push.
func (h *handler) outcomeNote(outcome slipway.DeployOutcome, dep, id, branch, after string, pushedAt time.Time, age time.Duration) string {
	switch outcome {
	case slipway.DeployCreated:
		return fmt.Sprintf("deployment %s of %s at %s queued", dep, branch, short(after))
	case slipway.DeployRedelivered:
		return fmt.Sprintf("redelivery of delivery %s: deployment %s was already created for it, nothing new was queued", id, dep)
	case slipway.DeployStale:
		return fmt.Sprintf("stale delivery: its push is %s old (pushed at %s), past the webhook window of %s, and commit %s of %s was already deployed as %s: nothing new was queued (push again to rebuild, or use `slipway deploy`)",
			age.Round(time.Second), pushedAt.UTC().Format(time.RFC3339), h.maxAge, short(after), branch, dep)
	}
	return fmt.Sprintf("replay of an earlier push: commit %s of %s was already deployed as %s, nothing new was queued", short(after), branch, dep)
}

// staleness returns when the push was made and how long ago, and whether
// that is past the webhook window. The push time is the payload's
// repository.pushed_at (GitHub), else its head commit's timestamp, else
// its newest commit's (Gitea, Forgejo and Gogs send no pushed_at). A
// delivery that says nothing about time is never stale; a push time in the
// future (clock skew) counts as now.
func (h *handler) staleness(ev *gh.PushEvent) (pushedAt time.Time, age time.Duration, stale bool) {
	if h.maxAge <= 0 {
		return time.Time{}, 0, false
	}
	switch {
	case ev.GetRepo().GetPushedAt().Unix() > 0:
		pushedAt = ev.GetRepo().GetPushedAt().Time
	case ev.GetHeadCommit().GetTimestamp().Unix() > 0:
		pushedAt = ev.GetHeadCommit().GetTimestamp().Time
	default:
		for _, c := range ev.Commits {
			if ts := c.GetTimestamp().Time; ts.Unix() > 0 && ts.After(pushedAt) {
				pushedAt = ts
			}
		}
	}
	if pushedAt.IsZero() {
		return time.Time{}, 0, false
	}
	age = max(h.now().Sub(pushedAt), 0)
	return pushedAt, age, age > h.maxAge
}

// userMessage is what a forge may read about err: internal errors are
// logged, never shown.
func userMessage(err error) string {
	if slipway.HTTPStatus(err) == http.StatusInternalServerError {
		return "internal error"
	}
	return slipway.ErrorMessage(err)
}

func (h *handler) errorReply(err error, doing string) (int, Response) {
	status := slipway.HTTPStatus(err)
	if status == http.StatusInternalServerError {
		h.log.Error("webhook: "+doing, "err", err)
	}
	return status, Response{Message: userMessage(err)}
}

// noProject answers a push verified by the app secret whose repository no
// project is registered for.
func noProject(repo string) (int, Response) {
	return reply(http.StatusNotFound, "no project is registered for repository %s; add one with `slipway project add NAME --repo %s`", repo, repo)
}

func reply(status int, format string, args ...any) (int, Response) {
	return status, Response{Message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, resp Response) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp) // the forge hung up: nothing to do
}

// formEncoded reports whether a delivery with Content-Type ct carries its
// JSON in a form field (GitHub's application/x-www-form-urlencoded option)
// and ok=false for a content type the handler does not accept.
func formEncoded(ct string) (form, ok bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, false
	}
	switch mt {
	case "application/json":
		return false, true
	case "application/x-www-form-urlencoded":
		return true, true
	}
	return false, false
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(r.Header.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

// validDeliveryID keeps what ends up in the store and the logs tame.
// GitHub and Gitea send UUIDs.
func validDeliveryID(id string) bool {
	if len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return false
		}
	}
	return true
}

// branchMatches reports whether branch passes a project's branch filter:
// the branch name itself or a path.Match pattern such as "release/*".
// An empty filter passes every branch.
func branchMatches(filter, branch string) bool {
	if filter == "" || filter == branch {
		return true
	}
	ok, err := path.Match(filter, branch)
	return err == nil && ok
}

// envelope holds the fields shared by every event that name the
// repository a delivery is about.
type envelope struct {
	Repository *struct {
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
		GitURL   string `json:"git_url"`
	} `json:"repository"`
	// Installation events list repositories by full name only.
	Repositories      []repoName `json:"repositories"`
	RepositoriesAdded []repoName `json:"repositories_added"`
	Installation      *struct {
		Account *struct {
			HTMLURL string `json:"html_url"`
		} `json:"account"`
	} `json:"installation"`
	Sender *struct {
		HTMLURL string `json:"html_url"`
	} `json:"sender"`
}

// repoURLs lists the URLs the payload gives for its repository, clone URL
// first (the one users register projects with).
func (e *envelope) repoURLs() []string {
	var urls []string
	add := func(u string) {
		if u != "" {
			urls = append(urls, u)
		}
	}
	if r := e.Repository; r != nil {
		add(r.CloneURL)
		add(r.HTMLURL)
		add(r.SSHURL)
		add(r.GitURL)
	}
	if len(urls) > 0 {
		return urls
	}
	// An installation names "owner/repo" on the account's host.
	host := "https://github.com"
	for _, u := range []string{e.installationAccountURL(), e.senderURL()} {
		if pu, err := url.Parse(u); err == nil && pu.Host != "" {
			host = pu.Scheme + "://" + pu.Host
			break
		}
	}
	for _, list := range [][]repoName{e.Repositories, e.RepositoriesAdded} {
		for _, r := range list {
			if r.FullName != "" {
				add(host + "/" + r.FullName)
			}
		}
	}
	return urls
}

// bounded refuses, with a non-zero 413 status, an envelope listing more
// than MaxRepositories repositories.
func (e *envelope) bounded() (int, Response) {
	if n := len(e.Repositories) + len(e.RepositoriesAdded); n > MaxRepositories {
		return reply(http.StatusRequestEntityTooLarge, "the delivery lists %d repositories, more than the %d Slipway accepts", n, MaxRepositories)
	}
	return 0, Response{}
}

// bounded refuses, with a non-zero 413 status, a push listing more than
// MaxCommits commits.
func bounded(ev any) (int, Response) {
	if p, ok := ev.(*gh.PushEvent); ok && len(p.Commits) > MaxCommits {
		return reply(http.StatusRequestEntityTooLarge, "the push lists %d commits, more than the %d Slipway accepts: push fewer commits at once", len(p.Commits), MaxCommits)
	}
	return 0, Response{}
}

type repoName struct {
	FullName string `json:"full_name"`
}

func (e *envelope) installationAccountURL() string {
	if e.Installation != nil && e.Installation.Account != nil {
		return e.Installation.Account.HTMLURL
	}
	return ""
}

func (e *envelope) senderURL() string {
	if e.Sender != nil {
		return e.Sender.HTMLURL
	}
	return ""
}

// parseEvent decodes the payload of the events Slipway knows into
// go-github's types; known is false for any other event.
func parseEvent(event string, payload []byte) (ev any, known bool, err error) {
	switch event {
	case "push":
		ev = new(gh.PushEvent)
	case "ping":
		ev = new(gh.PingEvent)
	case "pull_request":
		ev = new(gh.PullRequestEvent)
	case "installation":
		ev = new(gh.InstallationEvent)
	default:
		return nil, false, nil
	}
	if err := decodeObject(payload, ev); err != nil {
		return nil, true, err
	}
	return ev, true, nil
}

// decodeObject unmarshals a JSON object, turning decoding errors into
// messages that name the payload's fields rather than Go types.
func decodeObject(payload []byte, v any) error {
	if t := bytes.TrimLeft(payload, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("want a JSON object")
	}
	err := json.Unmarshal(payload, v)
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Errorf("field %q has the wrong type (a JSON %s)", te.Field, te.Value)
	}
	return errors.New("invalid JSON")
}

func names(projects []*slipway.Project) string {
	var b strings.Builder
	for i, p := range projects {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("project " + p.Name)
	}
	return b.String()
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
