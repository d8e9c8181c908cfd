package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/slipway-ci/slipway"
)

// ProjectsConfig configures the Projects service.
type ProjectsConfig struct {
	// Store keeps the projects.
	Store slipway.Store
	// Machines, if set, is asked to destroy a deleted project's machine.
	Machines slipway.MachineProvider
	// Secrets, if set, keeps the projects' build secrets; without it
	// setting or listing them is EINVALID.
	Secrets slipway.SecretStore
	// Logger gets operational messages; default slog.Default().
	Logger *slog.Logger
	// Now is the clock new projects are stamped with; default time.Now.
	Now func() time.Time
}

// Projects owns the rules of projects, whoever asks (the API, the demo):
// the defaults of a new project, the checks of its fields, its webhook
// secret, the changes of its build arguments, secrets and log retention,
// and its deletion. Callers map their own types onto it and nothing more.
type Projects struct {
	cfg ProjectsConfig
}

// NewProjects returns the project service.
func NewProjects(cfg ProjectsConfig) *Projects {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Projects{cfg: cfg}
}

// Defaults of a new project's optional fields.
const (
	DefaultBranch     = "main"
	DefaultDockerfile = "Dockerfile"
	DefaultContext    = "."
)

// NewProject is what a new project is made of. Empty optional fields get
// their defaults.
type NewProject struct {
	// Name and Repo are required.
	Name, Repo string
	// Branch is the branch pushes deploy; default DefaultBranch.
	Branch string
	// Dockerfile and Context are paths in the repository; defaults
	// DefaultDockerfile and DefaultContext.
	Dockerfile, Context string
	// WebhookSecret is the secret forges sign deliveries with; empty means
	// a new random one.
	WebhookSecret string
	// MaxLogAge and MaxLogSize, if set, limit how long and how much log is
	// kept, as slipway.ParseLogAge and slipway.ParseLogSize read them.
	MaxLogAge, MaxLogSize *string
	// LogMaxLines and LogMaxBytes, if set, bound each deployment's log
	// (see SetLogLimit); default slipway.DefaultLogMaxLines and
	// slipway.DefaultLogMaxBytes.
	LogMaxLines, LogMaxBytes *string
	// BuildArgs are the project's build arguments.
	BuildArgs []slipway.BuildArg
	// App, if not zero, sets how the project's app runs (see
	// SetAppSettings); unset fields take the defaults.
	App AppSettingsInput
}

// Create checks np, fills in its defaults and stores the project. A name
// that is taken is ECONFLICT; a field that fails its check is EINVALID (or
// ETOOLARGE).
func (s *Projects) Create(ctx context.Context, np NewProject) (*slipway.Project, error) {
	p := &slipway.Project{
		Name:       np.Name,
		Repo:       np.Repo,
		Branch:     orDefault(np.Branch, DefaultBranch),
		Dockerfile: orDefault(np.Dockerfile, DefaultDockerfile),
		Context:    orDefault(np.Context, DefaultContext),
		BuildArgs:  np.BuildArgs,
		CreatedAt:  s.cfg.Now().UTC(),
	}
	if err := validateProject(p); err != nil {
		return nil, err
	}
	ret, err := parseRetention(slipway.LogRetention{}, np.MaxLogAge, np.MaxLogSize)
	if err != nil {
		return nil, err
	}
	if !ret.IsZero() {
		if _, err := s.pruner(); err != nil {
			return nil, err
		}
	}
	p.LogRetention = ret
	if p.LogLimit, err = parseLogLimit(slipway.LogLimit{}, np.LogMaxLines, np.LogMaxBytes); err != nil {
		return nil, err
	}
	if p.App, err = parseAppSettings(slipway.AppSettings{}, np.App); err != nil {
		return nil, err
	}
	if err := slipway.ValidateBuildArgs(p.BuildArgs); err != nil {
		return nil, err
	}
	if p.WebhookSecret, err = webhookSecret(np.WebhookSecret); err != nil {
		return nil, err
	}
	if err := s.cfg.Store.CreateProject(ctx, p); err != nil {
		return nil, fmt.Errorf("create project %s: %w", p.Name, err)
	}
	return p, nil
}

// validateProject checks the name, repository, branch and paths of p.
func validateProject(p *slipway.Project) error {
	if err := slipway.ValidateProjectName(p.Name); err != nil {
		return err
	}
	if err := slipway.ValidateRepoURL(p.Repo); err != nil {
		return err
	}
	if err := slipway.ValidateRef(p.Branch); err != nil {
		return err
	}
	if err := slipway.ValidateRelPath("dockerfile", p.Dockerfile); err != nil {
		return err
	}
	return slipway.ValidateRelPath("context", p.Context)
}

// webhookSecret returns given after checking it, or a new random secret
// when given is empty.
func webhookSecret(given string) (string, error) {
	if given != "" {
		if err := slipway.ValidateWebhookSecret(given); err != nil {
			return "", err
		}
		return given, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseRetention returns cur with the limits given (non-nil) replaced:
// maxAge as slipway.ParseLogAge reads it, maxSize as slipway.ParseLogSize.
func parseRetention(cur slipway.LogRetention, maxAge, maxSize *string) (slipway.LogRetention, error) {
	if maxAge != nil {
		d, err := slipway.ParseLogAge(*maxAge)
		if err != nil {
			return cur, err
		}
		cur.MaxAge = d
	}
	if maxSize != nil {
		n, err := slipway.ParseLogSize(*maxSize)
		if err != nil {
			return cur, err
		}
		cur.MaxBytes = n
	}
	return cur, nil
}

// pruner returns the store as a LogPruner, or EINVALID when it keeps no
// log retention.
func (s *Projects) pruner() (slipway.LogPruner, error) {
	pruner, ok := s.cfg.Store.(slipway.LogPruner)
	if !ok {
		return nil, slipway.Errorf(slipway.EINVALID, "this server's store does not support log retention")
	}
	return pruner, nil
}

// SetLogRetention changes the limits of project's log retention that are
// given (non-nil), as parseRetention reads them, and returns the project.
func (s *Projects) SetLogRetention(ctx context.Context, project string, maxAge, maxSize *string) (*slipway.Project, error) {
	pruner, err := s.pruner()
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Store.Project(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", project, err)
	}
	ret, err := parseRetention(p.LogRetention, maxAge, maxSize)
	if err != nil {
		return nil, err
	}
	p, err = pruner.SetLogRetention(ctx, project, ret)
	if err != nil {
		return nil, fmt.Errorf("set the log retention of %s: %w", project, err)
	}
	return p, nil
}

// SetBuildArgs changes project's build arguments as
// slipway.ChangeBuildArgs does and returns the project.
func (s *Projects) SetBuildArgs(ctx context.Context, project string, set []slipway.BuildArg, unset []string) (*slipway.Project, error) {
	p, err := s.cfg.Store.SetBuildArgs(ctx, project, set, unset)
	if err != nil {
		return nil, fmt.Errorf("set the build arguments of %s: %w", project, err)
	}
	return p, nil
}

// secretStore returns the store of build secrets, or an error saying the
// server keeps none.
func (s *Projects) secretStore() (slipway.SecretStore, error) {
	if s.cfg.Secrets == nil {
		return nil, slipway.Errorf(slipway.EINVALID, "this server keeps no build secrets")
	}
	return s.cfg.Secrets, nil
}

// SetSecret creates or replaces project's build secret name after
// checking its name and value.
func (s *Projects) SetSecret(ctx context.Context, project, name string, value []byte) (*slipway.Secret, error) {
	secrets, err := s.secretStore()
	if err != nil {
		return nil, err
	}
	if err := slipway.ValidateSecret(name, value); err != nil {
		return nil, err
	}
	sec, err := secrets.SetSecret(ctx, project, name, value)
	if err != nil {
		return nil, fmt.Errorf("set secret %s of %s: %w", name, project, err)
	}
	return sec, nil
}

// DeleteSecret removes project's build secret name and returns its
// record.
func (s *Projects) DeleteSecret(ctx context.Context, project, name string) (*slipway.Secret, error) {
	secrets, err := s.secretStore()
	if err != nil {
		return nil, err
	}
	sec, err := secrets.DeleteSecret(ctx, project, name)
	if err != nil {
		return nil, fmt.Errorf("delete secret %s of %s: %w", name, project, err)
	}
	return sec, nil
}

// Secrets lists project's build secrets, without their values.
func (s *Projects) Secrets(ctx context.Context, project string) ([]*slipway.Secret, error) {
	secrets, err := s.secretStore()
	if err != nil {
		return nil, err
	}
	list, err := secrets.Secrets(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", project, err)
	}
	return list, nil
}

// Delete removes project name with its deployments, logs, secrets and
// machine, and returns how many deployments went with it. A project with
// a deployment that has not ended is ECONFLICT.
func (s *Projects) Delete(ctx context.Context, name string) (deployments int, err error) {
	if _, err := s.cfg.Store.Project(ctx, name); err != nil {
		return 0, err
	}
	ds, err := s.cfg.Store.Deployments(ctx, name, 0)
	if err != nil {
		return 0, fmt.Errorf("delete project %s: %w", name, err)
	}
	for _, d := range ds {
		if !d.Status.Terminal() {
			return 0, slipway.Errorf(slipway.ECONFLICT, "project %s has a deployment that has not ended (%s, %s): cancel it (slipway cancel %s) or wait for it",
				name, d.ID, d.Status, d.ID)
		}
	}
	// The machine first: a failure there leaves the project as it was
	// (a deleted volume is recreated by its next build); the store's
	// deletion checks again that nothing started in between.
	if s.cfg.Machines != nil {
		if err := s.cfg.Machines.Destroy(ctx, name); err != nil {
			return 0, fmt.Errorf("delete project %s: remove its machine: %w", name, err)
		}
	}
	if err := s.cfg.Store.DeleteProject(ctx, name); err != nil {
		return 0, err
	}
	s.cfg.Logger.Info("project deleted", "project", name, "deployments", len(ds))
	return len(ds), nil
}
