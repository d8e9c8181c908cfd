package builder

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/dockerfile"
)

// BuildInput is BuildWorkflow's input and the build activities'.
type BuildInput struct {
	DeploymentID string
	Project      string
	Repo         string
	Commit       string
	Dockerfile   string
	Context      string
	// Ref is the ref Commit was asked for. The fetch asks for a ref
	// outside refs/heads (a pull request's refs/pull/<N>/head) when the
	// branches lack the commit. Added after histories were recorded:
	// omitted when empty.
	Ref string `json:",omitempty"`
	// Image is the full reference to push: <registry>/<project>:<commit>.
	Image string
	// Dir is the checkout on the machine's volume (set after Fetch).
	Dir string
	// InputKey identifies the build's inputs (set after Build).
	InputKey string
	// ImageConfig are the config-only instructions the Dockerfile ends
	// with that Push applies to the image's config in the registry (set
	// after Build).
	ImageConfig []string `json:",omitempty"`
	// ConfigTail are those steps as Push applies them (set after Build;
	// an agent before it sent only ImageConfig).
	ConfigTail *ConfigTail `json:",omitempty"`
	// Secrets names the project's build secrets and SecretsToken lets the
	// agent fetch their values at build time (package buildsecrets): the
	// values never travel through the workflow's history. The agent
	// fetches them when Secrets is not empty.
	Secrets      []string
	SecretsToken string
	// BuildArgs are the project's build arguments (name to value) as they
	// were when the deployment was asked for. They are build inputs: a
	// changed value does not reuse an earlier build's image. Added after
	// histories were recorded: omitted when empty, so older inputs encode
	// as before.
	BuildArgs map[string]string `json:",omitempty"`
	// LogLimit bounds the deployment's build log: past it the agent stops
	// the build, which fails with slipway.LogLimitExceeded. Added after
	// histories were recorded: omitted when zero, and a zero limit means
	// the defaults (slipway.LogLimit.Effective).
	LogLimit slipway.LogLimit `json:",omitzero"`
}

// FetchResult is the Fetch activity's result.
type FetchResult struct {
	Dir string
}

// BuildActivityResult is the Build activity's result.
type BuildActivityResult struct {
	Steps []slipway.BuildStep
	// InputKey identifies the build's inputs (empty when they cannot be
	// pinned down); Push records it once the image is pushed.
	InputKey string
	// ReusedFrom is the image of an earlier build with identical inputs
	// whose image was reused instead of building.
	ReusedFrom string
	// ImageConfig and ConfigTail: see BuildInput.
	ImageConfig []string    `json:",omitempty"`
	ConfigTail  *ConfigTail `json:",omitempty"`
}

// ConfigTail are the config-only steps a Dockerfile's final stage ends
// with, evaluated by the agent's reading of the Dockerfile, that Push
// applies to the image's config in the registry instead of building them.
type ConfigTail struct {
	// Steps in order.
	Steps []dockerfile.ConfigStep
	// CmdSet is true when a CMD came earlier in the stage; RunEnv are the
	// variables the stage set before the steps (dockerfile.Apply).
	CmdSet bool     `json:",omitempty"`
	RunEnv []string `json:",omitempty"`
}

// PushResult is the Push activity's result.
type PushResult struct {
	Digest string
}

// BuildResult is BuildWorkflow's result.
type BuildResult struct {
	Image   string
	Digest  string
	Steps   []slipway.BuildStep
	Timings map[string]int64
}

// BuildWorkflow fetches, builds and pushes one commit on the project's
// machine. It runs on Queue(project), hosted by the project's agent;
// DeploymentWorkflow starts it as a child. Workflow code: deterministic
// (workflow.Now, no I/O); the activities are called by name.
func BuildWorkflow(ctx workflow.Context, in BuildInput) (*BuildResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		// Cancellation reaches an activity with a heartbeat: keep the
		// timeout short, so a superseded build's builder is killed within
		// seconds.
		HeartbeatTimeout: HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{ErrBuildFailed},
		},
	})
	timings := map[string]int64{}
	phase := func(name string, start time.Time) {
		timings[name] = workflow.Now(ctx).Sub(start).Milliseconds()
	}

	start := workflow.Now(ctx)
	var fetched FetchResult
	if err := workflow.ExecuteActivity(ctx, ActivityFetch, in).Get(ctx, &fetched); err != nil {
		return nil, err
	}
	phase("fetch", start)
	in.Dir = fetched.Dir

	start = workflow.Now(ctx)
	var built BuildActivityResult
	if err := workflow.ExecuteActivity(ctx, ActivityBuild, in).Get(ctx, &built); err != nil {
		return nil, err
	}
	phase("build", start)
	in.InputKey = built.InputKey
	in.ImageConfig = built.ImageConfig
	in.ConfigTail = built.ConfigTail

	start = workflow.Now(ctx)
	pushCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        6,
			NonRetryableErrorTypes: []string{ErrBuildFailed},
		},
	})
	var pushed PushResult
	if err := workflow.ExecuteActivity(pushCtx, ActivityPush, in).Get(ctx, &pushed); err != nil {
		return nil, err
	}
	phase("push", start)
	return &BuildResult{Image: in.Image, Digest: pushed.Digest, Steps: built.Steps, Timings: timings}, nil
}
