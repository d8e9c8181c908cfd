package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/redact"
)

// ServiceConfig configures the Deployer service.
type ServiceConfig struct {
	// Store records deployments.
	Store slipway.Store
	// Temporal starts and inspects workflows.
	Temporal client.Client
	// Registry is the host[:port][/prefix] images are pushed to; an image is
	// <Registry>/<project>:<commit>.
	Registry string
	// ResolveRef turns a ref into a commit SHA on the project's repository
	// (git ls-remote).
	ResolveRef func(ctx context.Context, repo, ref string) (string, error)
	// ImageExists reports whether the registry still has image@digest; a
	// rollback to an image that is gone is refused. Nil skips the check.
	ImageExists func(ctx context.Context, image, digest string) (bool, error)
	// Secrets, if set, holds the projects' build secrets: a deployment
	// carries their names and a build token, not their values.
	Secrets slipway.SecretStore
	// MaxBuild bounds one build; zero or less means DefaultMaxBuild.
	MaxBuild time.Duration
	// EarlyWake, if set, starts the project's machine as soon as Deploy
	// has recorded a new deployment, while Temporal schedules its workflow
	// (ProjectWorkflow, DeploymentWorkflow, the build slot): the workflow's
	// WakeMachine then finds the agent up, or nearly. It is called before
	// the workflow is started and must return at once (wake in the
	// background; ctx is the request's). It is never called for a delivery
	// that builds nothing (a replay, a duplicate). A machine it wakes for a
	// deployment that does not build at once goes back to sleep by itself
	// (the agent's start timeout).
	EarlyWake func(ctx context.Context, project string)
	// Logger gets operational messages; default slog.Default().
	Logger *slog.Logger
}

// Service implements slipway.Deployer on the store and Temporal.
type Service struct {
	cfg ServiceConfig
}

var _ slipway.Deployer = (*Service)(nil)

// NewService returns a Deployer.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBuild <= 0 {
		cfg.MaxBuild = DefaultMaxBuild
	}
	return &Service{cfg: cfg}
}

// Deploy implements slipway.Deployer.
func (s *Service) Deploy(ctx context.Context, req slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	p, err := s.cfg.Store.Project(ctx, req.Project)
	if err != nil {
		return nil, "", err
	}
	ref := req.Ref
	if ref == "" {
		ref = p.Branch
	}
	if err := slipway.ValidateRef(ref); err != nil {
		return nil, "", err
	}
	if err := checkPreview(req.Preview, ref); err != nil {
		return nil, "", err
	}
	commit := strings.ToLower(req.Commit)
	if commit != "" && !slipway.ValidCommit(commit) {
		return nil, "", slipway.Errorf(slipway.EINVALID, "invalid commit %q: give the full 40-character SHA", req.Commit)
	}
	if commit == "" {
		if s.cfg.ResolveRef == nil {
			return nil, "", slipway.Errorf(slipway.EINVALID, "no commit given")
		}
		commit, err = s.cfg.ResolveRef(ctx, p.Repo, ref)
		if err != nil {
			// git's message may quote the URL, credentials and all.
			r, rerr := projectRedactor(ctx, p, nil)
			if rerr != nil {
				return nil, "", rerr
			}
			return nil, "", redactError(r, err)
		}
		if !slipway.ValidCommit(commit) {
			return nil, "", slipway.Errorf(slipway.EINVALID, "ref %q of %s resolved to %q, which is not a commit SHA", ref, redact.RepoURL(p.Repo), commit)
		}
	}
	req.Ref, req.Commit = ref, commit
	if req.Trigger == "" {
		req.Trigger = slipway.TriggerManual
	}
	if d, outcome, err := Earlier(ctx, s.cfg.Store, req); err != nil || d != nil {
		return d, outcome, err
	}
	d := &slipway.Deployment{
		Project:    p.Name,
		Ref:        ref,
		Commit:     commit,
		Trigger:    req.Trigger,
		Status:     slipway.StatusQueued,
		Image:      ImageRef(s.cfg.Registry, p.Name, commit),
		DeliveryID: DeliveryKey(req),
		Preview:    req.Preview,
	}
	existing, created, err := s.cfg.Store.CreateDeployment(ctx, d)
	if err != nil {
		return nil, "", fmt.Errorf("record deployment: %w", err)
	}
	if !created {
		return existing, CreatedOutcome(created), nil
	}
	if existing != nil {
		d = existing
	}
	if s.cfg.EarlyWake != nil {
		s.cfg.EarlyWake(ctx, p.Name)
	}
	if err := s.start(ctx, p, d); err != nil {
		return nil, "", err
	}
	return d, slipway.DeployCreated, nil
}

// start starts d's workflow; if that fails, d is recorded as failed.
func (s *Service) start(ctx context.Context, p *slipway.Project, d *slipway.Deployment) error {
	return s.startWith(ctx, p, d, nil)
}

func (s *Service) startWith(ctx context.Context, p *slipway.Project, d *slipway.Deployment, reuse *ReuseImage) error {
	in, err := s.input(ctx, p, d, reuse)
	if err != nil {
		return s.failStart(ctx, p, d, err)
	}
	// The project's workflow runs its deployments one at a time and lets a
	// newer push to a branch supersede the older ones.
	_, err = s.cfg.Temporal.SignalWithStartWorkflow(ctx, ProjectWorkflowID(p.Name), SignalDeploy, in,
		client.StartWorkflowOptions{ID: ProjectWorkflowID(p.Name), TaskQueue: ControlQueue},
		ProjectWorkflow, p.Name, []DeploymentInput(nil))
	if err == nil {
		return nil
	}
	return s.failStart(ctx, p, d, err)
}

// input is the workflow input of d. A pull request's preview gets no
// build secrets: its Dockerfile is the pull request's, from a fork too,
// and could print them into its image.
func (s *Service) input(ctx context.Context, p *slipway.Project, d *slipway.Deployment, reuse *ReuseImage) (DeploymentInput, error) {
	in := DeploymentInput{
		DeploymentID: d.ID,
		Project:      p.Name,
		Repo:         p.Repo,
		Ref:          d.Ref,
		Commit:       d.Commit,
		Dockerfile:   p.Dockerfile,
		Context:      p.Context,
		Image:        d.Image,
		QueuedAt:     d.CreatedAt,
		MaxBuild:     s.cfg.MaxBuild,
		Reuse:        reuse,
		Preview:      d.Preview,
	}
	if reuse == nil {
		in.BuildArgs = slipway.BuildArgsMap(p.BuildArgs)
		in.LogLimit = p.LogLimit.Effective()
	}
	if s.cfg.Secrets != nil && reuse == nil && d.Preview == 0 {
		if err := s.addSecrets(ctx, &in); err != nil {
			return in, err
		}
	}
	return in, nil
}

// checkPreview checks that a preview's deployment is of its pull
// request's head ref (refs/pull/<n>/head), so that its builds supersede
// each other and nothing else (ProjectWorkflow compares refs), and that a
// deployment of such a ref is a preview.
func checkPreview(n int, ref string) error {
	switch {
	case n < 0:
		return slipway.Errorf(slipway.EINVALID, "invalid pull request number %d", n)
	case n > 0 && slipway.PreviewOfRef(ref) != n:
		return slipway.Errorf(slipway.EINVALID, "the preview of pull request #%d deploys its head, %s, not %s", n, slipway.PreviewRef(n), ref)
	case n == 0 && slipway.PreviewOfRef(ref) != 0:
		return slipway.Errorf(slipway.EINVALID, "%s is a pull request's head: it is deployed as its preview, not as the project's release", ref)
	}
	return nil
}

// addSecrets puts the names of the project's build secrets and the
// deployment's build token in in.
func (s *Service) addSecrets(ctx context.Context, in *DeploymentInput) error {
	secrets, err := s.cfg.Secrets.Secrets(ctx, in.Project)
	if err != nil {
		return fmt.Errorf("list build secrets: %w", err)
	}
	if len(secrets) == 0 {
		return nil
	}
	for _, sec := range secrets {
		in.Secrets = append(in.Secrets, sec.Name)
	}
	in.SecretsToken, err = s.cfg.Secrets.BuildToken(in.DeploymentID)
	if err != nil {
		return fmt.Errorf("build token: %w", err)
	}
	return nil
}

// failStart records d as failed because its workflow could not start.
func (s *Service) failStart(ctx context.Context, p *slipway.Project, d *slipway.Deployment, err error) error {
	s.cfg.Logger.Error("start deployment workflow", "deployment", d.ID, "project", p.Name, "error", err)
	msg := "could not start the deployment workflow: " + err.Error()
	if ferr := s.cfg.Store.FinishDeployment(context.WithoutCancel(ctx), d.ID, slipway.DeploymentResult{Status: slipway.StatusFailed, FailedStep: "queue", Error: msg}, time.Now().UTC()); ferr != nil {
		s.cfg.Logger.Error("record failed start", "deployment", d.ID, "error", ferr)
	}
	return fmt.Errorf("start workflow for deployment %s: %w", d.ID, err)
}

// Reconcile brings unfinished deployments in the store in line with
// Temporal after a restart: a deployment whose workflow never started is
// handed to its project's workflow again (which ignores one it already
// has); one whose workflow closed without recording a result is marked
// failed.
func (s *Service) Reconcile(ctx context.Context) error {
	ds, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range ds {
		desc, err := s.cfg.Temporal.DescribeWorkflowExecution(ctx, builder.DeploymentWorkflowID(d.ID), "")
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			p, perr := s.cfg.Store.Project(ctx, d.Project)
			if perr != nil {
				_ = s.cfg.Store.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusFailed, Error: "project no longer exists"}, time.Now().UTC())
				continue
			}
			var reuse *ReuseImage
			if d.Trigger == slipway.TriggerRollback {
				reuse = &ReuseImage{Image: d.Image, Digest: d.Digest}
			}
			if err := s.startWith(ctx, p, d, reuse); err != nil {
				s.cfg.Logger.Error("reconcile", "deployment", d.ID, "error", err)
			}
		case err != nil:
			return fmt.Errorf("describe workflow of %s: %w", d.ID, err)
		case desc.WorkflowExecutionInfo.GetCloseTime() != nil:
			// Closed, yet the store was not updated: the workflow's final
			// activity never ran (terminated by hand, or timed out).
			st := desc.WorkflowExecutionInfo.GetStatus().String()
			_ = s.cfg.Store.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusFailed, Error: "the deployment workflow ended (" + st + ") without recording a result"}, time.Now().UTC())
		}
	}
	return nil
}

// Cancel stops a queued or running deployment; it ends cancelled.
func (s *Service) Cancel(ctx context.Context, id string) (*slipway.Deployment, error) {
	d, err := s.cfg.Store.Deployment(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.Status.Terminal() {
		return nil, slipway.Errorf(slipway.ECONFLICT, "deployment %s already ended %s", d.ID, d.Status)
	}
	err = s.cfg.Temporal.SignalWorkflow(ctx, ProjectWorkflowID(d.Project), "", SignalCancel, d.ID)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		// No workflow holds it: record it directly.
		err = s.cfg.Store.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusCancelled, Error: "cancelled"}, time.Now().UTC())
	}
	if err != nil {
		return nil, fmt.Errorf("cancel %s: %w", id, err)
	}
	return d, nil
}

// ImageRef is the image reference of a project's build of commit.
func ImageRef(registry, project, commit string) string {
	return strings.TrimSuffix(registry, "/") + "/" + project + ":" + commit
}

// Rollback implements slipway.Deployer.
func (s *Service) Rollback(ctx context.Context, project, to string) (*slipway.Deployment, error) {
	p, err := s.cfg.Store.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	ds, err := s.cfg.Store.Deployments(ctx, p.Name, 0)
	if err != nil {
		return nil, err
	}
	target, err := rollbackTarget(ds, to, p.Release)
	if err != nil {
		return nil, err
	}
	if s.cfg.ImageExists != nil {
		ok, err := s.cfg.ImageExists(ctx, target.Image, target.Digest)
		if err != nil {
			return nil, fmt.Errorf("check image %s: %w", target.Image, err)
		}
		if !ok {
			return nil, slipway.Errorf(slipway.ENOTFOUND, "the image of deployment %s (%s@%s) is no longer in the registry; deploy commit %s again to rebuild it", target.ID, target.Image, target.Digest, target.Commit)
		}
	}
	d := &slipway.Deployment{
		Project: p.Name,
		Ref:     target.Ref,
		Commit:  target.Commit,
		Trigger: slipway.TriggerRollback,
		Status:  slipway.StatusQueued,
		Image:   target.Image,
		Digest:  target.Digest,
	}
	if _, _, err := s.cfg.Store.CreateDeployment(ctx, d); err != nil {
		return nil, fmt.Errorf("record rollback: %w", err)
	}
	if err := s.startWith(ctx, p, d, &ReuseImage{Image: target.Image, Digest: target.Digest, From: target.ID}); err != nil {
		return nil, err
	}
	return d, nil
}

// rollbackTarget picks the deployment to roll back to from ds (newest
// first): the one named by to (a deployment id or a commit SHA prefix), or
// the successful one with another image before the current release
// (current, a deployment id; the latest successful one when "").
func rollbackTarget(ds []*slipway.Deployment, to, current string) (*slipway.Deployment, error) {
	usable := func(d *slipway.Deployment) bool {
		// A pull request's preview is never the project's release.
		return d.Status == slipway.StatusSucceeded && d.Digest != "" && d.Image != "" && d.Preview == 0
	}
	if to == "" {
		var latest *slipway.Deployment
		if current != "" && !slices.ContainsFunc(ds, func(d *slipway.Deployment) bool { return d.ID == current && usable(d) }) {
			current = ""
		}
		for _, d := range ds {
			if !usable(d) || (latest == nil && current != "" && d.ID != current) {
				continue
			}
			if latest == nil {
				latest = d
			} else if d.Digest != latest.Digest {
				return d, nil
			}
		}
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no earlier successful deployment with a different image to roll back to")
	}
	to = strings.ToLower(to)
	isSHA := len(to) >= 7 && len(to) <= 40 && strings.Trim(to, "0123456789abcdef") == ""
	for _, d := range ds {
		if d.ID == to || (isSHA && strings.HasPrefix(d.Commit, to)) {
			if !usable(d) {
				if d.ID == to && d.Preview != 0 {
					return nil, slipway.Errorf(slipway.EINVALID, "deployment %s built the preview of pull request #%d: a preview is never the project's release", d.ID, d.Preview)
				}
				if d.ID == to {
					return nil, slipway.Errorf(slipway.EINVALID, "deployment %s is %s: only a successful deployment's image can be rolled back to", d.ID, d.Status)
				}
				continue
			}
			return d, nil
		}
	}
	if isSHA {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no successful deployment of commit %s", to)
	}
	return nil, slipway.Errorf(slipway.ENOTFOUND, "no deployment %q in this project (give a deployment id or a commit SHA of at least 7 digits)", to)
}
