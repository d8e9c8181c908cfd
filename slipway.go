// Package slipway holds Slipway's domain types (Project, Deployment, Status,
// LogLine) and the contracts between its parts (Store, MachineProvider).
//
// It must not import any adapter package (sqlite, temporal, podman, nats,
// http, ...): adapters import it, never the other way round. The path of one
// push is webhook (package github) → store (sqlite) → workflow (deploy) →
// machine (machine/process) → agent (agent, gitmirror, podman) → registry →
// logs (natslog).
package slipway

import (
	"context"
	"time"
)

// Status is the state of a deployment. Every deployment ends in one of the
// terminal states (see Status.Terminal).
type Status string

// The states a deployment moves through.
const (
	StatusQueued     Status = "queued"
	StatusBuilding   Status = "building"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
	StatusSuperseded Status = "superseded"
)

// Terminal reports whether s is a final state.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusSuperseded:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s Status) Valid() bool {
	return s == StatusQueued || s == StatusBuilding || s.Terminal()
}

// Project is a repository plus its build settings.
type Project struct {
	// Name is the project's unique, DNS-label-like name (see ValidateProjectName).
	Name string `json:"name"`
	// Repo is any git URL the builder can fetch, file:// included.
	Repo string `json:"repo"`
	// Branch is the branch filter: only pushes to this branch deploy.
	Branch string `json:"branch"`
	// Dockerfile is the Dockerfile's path relative to the repository root.
	Dockerfile string `json:"dockerfile"`
	// Context is the build context directory relative to the repository root.
	Context string `json:"context"`
	// WebhookSecret is the HMAC secret forges sign deliveries with.
	WebhookSecret string `json:"-"`
	// HookID names the project's own webhook URL,
	// /webhooks/github/<HookID>: a random, unguessable id (32 hex digits)
	// the store gives every project, so a delivery there is verified with
	// this project's secret before its payload is parsed.
	HookID string `json:"hookId,omitempty"`
	// LogRetention is how long and how much build log the store keeps;
	// the zero value keeps everything.
	LogRetention LogRetention `json:"logRetention"`
	// LogLimit bounds each deployment's build log; its zero fields take
	// the defaults (LogLimit.Effective).
	LogLimit LogLimit `json:"logLimit"`
	// App is how the project's app runs; its zero fields take the
	// defaults (AppSettings.Effective).
	App AppSettings `json:"app"`
	// Release is the id of the deployment whose image the project's app
	// serves (its current release), set by the deployment's release
	// phase (ReleaseStore.SetRelease); empty before the first release.
	Release string `json:"release,omitempty"`
	// BuildArgs are the values of the Dockerfile's ARGs its builds get
	// (--build-arg NAME=VALUE), by name (see ValidateBuildArgs). A
	// deployment builds with the values of when it was asked for.
	BuildArgs []BuildArg `json:"buildArgs"`
	// CreatedAt is when the project was registered.
	CreatedAt time.Time `json:"createdAt"`
}

// Trigger says what started a deployment.
type Trigger string

// Known triggers.
const (
	TriggerWebhook Trigger = "webhook"
	TriggerManual  Trigger = "manual"
	TriggerDemo    Trigger = "demo"
	// TriggerRollback marks a deployment of an earlier build's image: it
	// runs no build.
	TriggerRollback Trigger = "rollback"
)

// Deployment is one attempt to build (and maybe roll out) one commit.
type Deployment struct {
	ID      string  `json:"id"`
	Project string  `json:"project"`
	Ref     string  `json:"ref"`
	Commit  string  `json:"commit"`
	Trigger Trigger `json:"trigger"`
	Status  Status  `json:"status"`
	Image   string  `json:"image"`
	Digest  string  `json:"digest"`
	// Error is the user-facing reason a deployment failed.
	Error string `json:"error,omitempty"`
	// FailedStep is the Dockerfile step (or phase) that failed, if known.
	FailedStep string `json:"failedStep,omitempty"`
	// DeliveryID is the delivery a webhook deployment was made for: the
	// forge's X-GitHub-Delivery id and the project's name, "<id>/<project>"
	// (records made before for a single project have the id alone).
	DeliveryID string `json:"deliveryId,omitempty"`
	// Timings maps a phase name (queue, wake, fetch, build, push, total) to
	// its duration in milliseconds.
	Timings map[string]int64 `json:"timings,omitempty"`
	// Steps are the Dockerfile steps the build ran, with their durations
	// and whether the layer cache served them.
	Steps []BuildStep `json:"steps,omitempty"`
	// LogPruned is true once the project's log retention deleted the
	// deployment's log lines; the record itself is kept.
	LogPruned bool `json:"logPruned,omitempty"`
	// LogComplete says whether the store held the deployment's whole log
	// (every line the agent wrote) when it ended: nil while it runs, and
	// for deployments recorded before Slipway checked; false when the
	// lines did not all arrive in time (see LogCompleteAt).
	LogComplete *bool `json:"logComplete,omitempty"`
	// LogCompleteAt is when the log was found complete, or when the wait
	// for it gave up.
	LogCompleteAt *time.Time `json:"logCompleteAt,omitempty"`
	// LogLines is the number of the deployment's last log line, as far as
	// it is known when it ended (0: none).
	LogLines int64 `json:"logLines,omitempty"`
	// Preview is the number of the pull request whose preview the
	// deployment builds (its Ref is refs/pull/<N>/head), or 0 for a
	// deployment of the project itself. A preview deployment never
	// becomes the project's current release.
	Preview int `json:"preview,omitempty"`
	// Progress, when set, is the deployment's progress as read with its
	// record (the API fills it in for subscribers); it is not stored.
	Progress   *Progress  `json:"progress,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// LogLine is one numbered line of a deployment's public build output.
type LogLine struct {
	Deployment string    `json:"deployment"`
	N          int64     `json:"n"`
	Time       time.Time `json:"time"`
	Stream     string    `json:"stream"`
	Step       string    `json:"step,omitempty"`
	Text       string    `json:"text"`
}

// StepOrNil is Step, or nil for a line of no step (the API's null). The
// API reads it as a plain method, not a resolver: gqlgen runs each
// resolver field of each line in a goroutine of its own, which at tens of
// thousands of lines a second was a large part of a live log's cost.
func (l *LogLine) StepOrNil() *string {
	if l.Step == "" {
		return nil
	}
	return &l.Step
}

// DeploymentResult is what a finished deployment records.
type DeploymentResult struct {
	Status     Status
	Image      string
	Digest     string
	Error      string
	FailedStep string
	Timings    map[string]int64
	Steps      []BuildStep
	// LogComplete, LogCompleteAt and LogLines: see Deployment. When
	// LogComplete is nil, a deployment that never started building is
	// recorded with a complete (empty) log at the finish time, others with
	// LogComplete unknown.
	LogComplete   *bool
	LogCompleteAt time.Time
	LogLines      int64
}

// BuildStep is one Dockerfile step of a build.
type BuildStep struct {
	// N numbers the steps of the whole build from 1.
	N int `json:"n"`
	// Instruction is the step as podman printed it, e.g.
	// "STEP 3/5: RUN npm ci" or "[1/2] STEP 2/4: COPY . .".
	Instruction string `json:"instruction"`
	// Cached is true when the layer cache served the step.
	Cached bool `json:"cached"`
	// InRegistry is true for a step that only changes the image's config
	// (EXPOSE, USER, CMD, ...) and was applied to it in the registry at
	// push instead of being built.
	InRegistry bool `json:"inRegistry,omitempty"`
	// DurationMs is how long the step took.
	DurationMs int64 `json:"durationMs"`
	// Why says why the step could not be reused from an earlier build's
	// recorded image (its inputs cannot be pinned down, or it follows
	// such a step); empty when it could be.
	Why string `json:"why,omitempty"`
}

// Store persists projects, deployments, webhook deliveries, log lines and
// machine records.
// Implementations are safe for concurrent use.
type Store interface {
	// CreateProject stores p; it fails with ECONFLICT if the name is taken.
	CreateProject(ctx context.Context, p *Project) error
	// SetBuildArgs changes a project's build arguments as ChangeBuildArgs
	// does (set adds or replaces, unset removes) and returns the project.
	// An unknown project, or unsetting an argument it lacks, is
	// ENOTFOUND; a result ValidateBuildArgs refuses is EINVALID or
	// ETOOLARGE. Nothing is written when it fails.
	SetBuildArgs(ctx context.Context, project string, set []BuildArg, unset []string) (*Project, error)
	// Project returns the named project or ENOTFOUND.
	Project(ctx context.Context, name string) (*Project, error)
	// Projects lists every project by name.
	Projects(ctx context.Context) ([]*Project, error)
	// DeleteProject removes a project with its deployments' records, logs,
	// machine record and secrets; ECONFLICT while one of its deployments
	// is queued or building, ENOTFOUND for an unknown name.
	DeleteProject(ctx context.Context, name string) error
	// ProjectsByRepo returns the projects whose repository matches one of
	// urls (compared after NormalizeRepoURL).
	ProjectsByRepo(ctx context.Context, urls []string) ([]*Project, error)
	// ProjectByHookID returns the project whose HookID is id, or
	// ENOTFOUND.
	ProjectByHookID(ctx context.Context, id string) (*Project, error)

	// CreateDeployment stores d (status queued). If deliveryID is not empty
	// and was seen before, nothing is written and the earlier deployment is
	// returned with created=false.
	CreateDeployment(ctx context.Context, d *Deployment) (existing *Deployment, created bool, err error)
	// Deployment returns one deployment or ENOTFOUND.
	Deployment(ctx context.Context, id string) (*Deployment, error)
	// Deployments lists a project's deployments, newest first; limit <= 0
	// means all.
	Deployments(ctx context.Context, project string, limit int) ([]*Deployment, error)
	// DeploymentOfCommit returns the newest deployment of commit (any
	// case) from branch (a ref "refs/heads/<branch>" or "<branch>") in
	// project, or ENOTFOUND.
	DeploymentOfCommit(ctx context.Context, project, branch, commit string) (*Deployment, error)
	// UnfinishedDeployments lists deployments not in a terminal state.
	UnfinishedDeployments(ctx context.Context) ([]*Deployment, error)
	// MarkBuilding moves a queued deployment to building and sets StartedAt.
	MarkBuilding(ctx context.Context, id string, at time.Time) error
	// FinishDeployment records a terminal result. Finishing an already
	// finished deployment is a no-op (the first result wins).
	FinishDeployment(ctx context.Context, id string, r DeploymentResult, at time.Time) error

	// AppendLogLines stores lines; a line already stored (same deployment
	// and number) is ignored, so redelivery is harmless.
	AppendLogLines(ctx context.Context, lines []LogLine) error
	// LogLines returns a deployment's lines with N >= from, in order; limit
	// <= 0 means all.
	LogLines(ctx context.Context, deployment string, from int64, limit int) ([]LogLine, error)

	// UpsertMachine stores m as the project's machine record, replacing
	// the previous one; a zero UpdatedAt becomes now. An unknown project is
	// ENOTFOUND; an invalid state is EINVALID.
	UpsertMachine(ctx context.Context, m *Machine) error
	// Machine returns a project's machine record, or ENOTFOUND when the
	// project never had a machine.
	Machine(ctx context.Context, project string) (*Machine, error)
	// Machines lists every machine record by project name.
	Machines(ctx context.Context) ([]*Machine, error)

	// Close releases the store.
	Close() error
}

// DeployRequest asks for a deployment of one commit of a project.
type DeployRequest struct {
	// Project is the project's name.
	Project string
	// Ref is the git ref that was pushed ("refs/heads/main") or asked for
	// ("main"); it defaults to the project's branch.
	Ref string
	// Commit is the full SHA to build. When empty, Ref is resolved on the
	// repository (git ls-remote).
	Commit string
	// Trigger says who asked.
	Trigger Trigger
	// DeliveryID is the forge's delivery id, as the forge sent it; a second
	// request of the same project with the same id creates nothing and
	// returns the first deployment.
	DeliveryID string
	// Stale says the forge delivered the push later than the webhook
	// window allows: a deployment of its commit from its branch, by any
	// trigger, answers it instead of a new build.
	Stale bool
	// Preview, when not 0, is the number of the pull request the
	// deployment previews (see Deployment.Preview); Ref is then its head
	// ref, refs/pull/<N>/head.
	Preview int
}

// DeployOutcome says what Deploy did with a request: created a deployment,
// or answered it with an earlier one, and why.
type DeployOutcome string

// Deploy outcomes.
const (
	// DeployCreated: a new deployment was recorded and started.
	DeployCreated DeployOutcome = "created"
	// DeployRedelivered: the request's delivery id was seen before; the
	// deployment made for it answers it.
	DeployRedelivered DeployOutcome = "redelivered"
	// DeployReplayed: a webhook delivery under a new id of a commit a
	// webhook already deployed from the same branch.
	DeployReplayed DeployOutcome = "replayed"
	// DeployStale: a stale delivery (DeployRequest.Stale) of a commit
	// already deployed from the same branch.
	DeployStale DeployOutcome = "stale"
)

// Created reports whether o is DeployCreated.
func (o DeployOutcome) Created() bool { return o == DeployCreated }

// Deployer creates deployments and starts their workflows.
type Deployer interface {
	// Rollback makes a new deployment of the image of an earlier successful
	// deployment of project, without building. to names it by deployment
	// id or commit SHA (a prefix of at least 7 digits); empty means the
	// successful deployment before the latest one.
	Rollback(ctx context.Context, project, to string) (*Deployment, error)
	// Cancel stops a queued or running deployment, which ends cancelled; a
	// deployment that already ended is ECONFLICT.
	Cancel(ctx context.Context, id string) (*Deployment, error)
	// Deploy validates req, records a queued deployment and starts its
	// workflow (DeployCreated). A request an earlier deployment already
	// answers (a delivery id seen before, a replayed or stale delivery)
	// creates nothing: that deployment is returned with the outcome
	// saying why. If the workflow cannot be started the deployment is
	// recorded as failed, never left queued.
	Deploy(ctx context.Context, req DeployRequest) (d *Deployment, outcome DeployOutcome, err error)
}
