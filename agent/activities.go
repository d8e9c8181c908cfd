package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/buildsecrets"
	"github.com/slipway-ci/slipway/events"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/redact"
)

// Activities are the build activities; one agent (one machine) runs them
// for one project.
type Activities struct {
	cfg     Config
	layout  builder.Layout
	builder *buildah.Builder
	tracker *idleTracker
	// events announces progress on the deployments' event subjects; nil
	// without NATS.
	events *nats.Conn
	// secrets keeps the build secrets of the deployment being built.
	secrets secretCache
	// logBytes keeps how much log text each deployment's earlier
	// activities wrote, against its log limit.
	logBytes logUsage
	// background is the context of the housekeeping that runs after an
	// activity returned (afterJob): Run's. Nil: context.Background().
	background context.Context
	// afterJobs counts the housekeeping still running after an activity
	// returned (afterJob); Run waits for it before it returns.
	afterJobs sync.WaitGroup
	// migrating counts the removal of an older agent's podman storage
	// (migrateVolume).
	migrating sync.WaitGroup
}

// job is what every activity sets up: idle tracking, heartbeats and the
// log publisher.
type job struct {
	// secrets masks the deployment's secrets in everything the job sends
	// out: log lines, and the errors that go back through Temporal.
	secrets *redact.Redactor
	// buildSecrets are the project's build secrets, with their values.
	buildSecrets []slipway.SecretValue
	pub          *publish.Publisher
	// log is the build log's zap logger for the agent's own narration:
	// the publisher's core, whose two sinks are NATS and stdout. Nil
	// without a publisher (no NATS): narration goes to out.
	log *zap.Logger
	out io.Writer
	// progress reports the phase and build step to the deployment's
	// workflow.
	progress *progressReporter
	// stop ends the activity; err is what it returns.
	stop func(err *error)
	// ctx is the activity's context, cancelled when the log passes its
	// limit (the activity uses it in place of its own).
	ctx   context.Context
	phase string
	limit slipway.LogLimit // the log's limit, with a publisher
}

func (a *Activities) begin(ctx context.Context, in builder.BuildInput, phase string) (*job, error) {
	// Every phase needs the build secrets, if the project has any, if only
	// to mask them in its output; the first fetches them, the others find
	// them kept.
	var buildSecrets []slipway.SecretValue
	kept := false
	if len(in.Secrets) > 0 {
		vals, fresh, err := a.secrets.get(ctx, in.DeploymentID, func(ctx context.Context) ([]slipway.SecretValue, error) {
			return a.fetchSecrets(ctx, in)
		})
		if err != nil {
			return nil, err
		}
		if fresh {
			a.cfg.Logger.Info("build secrets fetched", "deployment", in.DeploymentID, "phase", phase, "count", len(vals))
		}
		buildSecrets, kept = vals, true
	}
	// The previous build's housekeeping may still run: never beside this.
	a.waitAfterJob()
	a.tracker.begin()
	stopHeartbeat := startHeartbeat(ctx, phase)
	// Secrets are masked before any sink: the log stream, stdout, and
	// through the stream the store.
	masked := redact.RepoURLSecrets(in.Repo)
	for _, s := range buildSecrets {
		masked = append(masked, string(s.Value))
	}
	secrets := redact.New(masked...)
	stdout := redact.NewWriter(a.cfg.Stdout, secrets)
	j := &job{out: stdout, secrets: secrets, buildSecrets: buildSecrets, phase: phase}
	var cancel context.CancelFunc
	j.ctx, cancel = context.WithCancel(ctx)
	a.startPublisher(ctx, j, in, cancel)
	j.progress = startProgress(a.progressSender(ctx, in), slipway.Progress{Phase: phase}, a.cfg.Logger)
	j.stop = func(errp *error) {
		j.progress.close()
		if j.pub != nil {
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = j.pub.Close(cctx)
			ccancel()
			// A fetch or build that went well is followed by the build's
			// next activity, whose own report covers its lines too (the
			// numbers go on from one activity to the next): only the last
			// activity of a build, or one that failed or was stopped,
			// reports, and the next activity starts a Temporal round trip
			// sooner.
			if *errp != nil || phase == "push" {
				a.reportLogEnd(ctx, in, j.pub.LastLine())
			}
			a.logBytes.set(in.DeploymentID, j.pub.Bytes(), lastActivity(ctx, phase, *errp))
		}
		_ = stdout.Flush()
		stopHeartbeat()
		if kept && a.secrets.release(in.DeploymentID, lastActivity(ctx, phase, *errp)) {
			a.cfg.Logger.Info("build secrets dropped", "deployment", in.DeploymentID, "phase", phase)
		}
		a.tracker.end(time.Now())
		cancel()
	}
	return j, nil
}

// startPublisher starts the job's log publisher, if the agent has NATS.
// A log that passes its limit (in.LogLimit, defaults filled in) ends the
// job: stop cancels j.ctx, which stops the activity's git or build
// process, and scrub turns the activity's error into the limit's.
func (a *Activities) startPublisher(ctx context.Context, j *job, in builder.BuildInput, stop context.CancelFunc) {
	if a.cfg.NATSURL == "" {
		return
	}
	limit := in.LogLimit.Effective()
	pub, err := publish.New(ctx, publish.Config{
		URL:        a.cfg.NATSURL,
		Options:    natsOptions(a.cfg.AgentConfig),
		Project:    in.Project,
		Deployment: in.DeploymentID,
		Stdout:     a.cfg.Stdout,
		Logger:     a.cfg.Logger,
		Redact:     j.secrets,
		SpoolDir:   a.layout.LogSpool,
		MaxLines:   limit.MaxLines,
		MaxBytes:   limit.MaxBytes,
		UsedBytes:  a.logBytes.get(in.DeploymentID),
		OnLimit:    stop,
	})
	if err != nil {
		// The build never waits on the log path: keep going with stdout.
		a.cfg.Logger.Warn("log stream unavailable, logging to stdout only", "deployment", in.DeploymentID, "error", err)
		return
	}
	j.pub = pub
	j.log = zap.New(pub.Core(zapcore.InfoLevel))
	j.out = nil
	j.limit = limit
}

// reportLogEnd tells the deployment's workflow the number of the last log
// line written so far (builder.SignalLogEnd), so that the server waits for
// the archiver to store that many before it records the end. Best effort:
// without it the server waits for what the stream holds.
func (a *Activities) reportLogEnd(ctx context.Context, in builder.BuildInput, last int64) {
	if last == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), progressTimeout)
	defer cancel()
	if err := activity.GetClient(ctx).SignalWorkflow(sctx, builder.DeploymentWorkflowID(in.DeploymentID), "", builder.SignalLogEnd, last); err != nil {
		a.cfg.Logger.Warn("report the last log line", "deployment", in.DeploymentID, "line", last, "error", err)
	}
}

// progressSender returns how the activity of ctx reports progress: a
// builder.SignalProgress signal to the deployment's workflow, then an
// announcement on the deployment's NATS event subject so that the API's
// subscribers query it at once.
func (a *Activities) progressSender(ctx context.Context, in builder.BuildInput) func(context.Context, slipway.Progress) error {
	c := activity.GetClient(ctx)
	return func(ctx context.Context, p slipway.Progress) error {
		if err := c.SignalWorkflow(ctx, builder.DeploymentWorkflowID(in.DeploymentID), "", builder.SignalProgress, p); err != nil {
			return err
		}
		if a.events != nil {
			return events.Announce(a.events, in.Project, in.DeploymentID, slipway.StatusBuilding)
		}
		return nil
	}
}

// writer returns where a command's output goes.
func (j *job) writer(stream, step string) io.Writer {
	if j.pub != nil {
		return j.pub.Writer(stream, step)
	}
	return j.out
}

// line logs one line of the agent's own narration.
func (j *job) line(step, format string, args ...any) {
	text := strings.TrimSuffix(fmt.Sprintf(format, args...), "\n")
	if j.log != nil {
		j.pub.SetStep(step)
		j.log.Info(text)
		return
	}
	fmt.Fprintln(j.out, text)
}

// scrub returns err with the job's secrets masked in its message: an
// activity's error goes into Temporal's history and maybe the deployment's
// record. Application errors are built redacted (buildFailed); others
// (git's, buildah's) are replaced by a plain error with the masked message,
// which Temporal retries just the same.
func (j *job) scrub(err error) error {
	if j.pub != nil && j.pub.LimitExceeded() {
		return j.buildFailed(j.phase, nil, "%s: the build's log passed %s, this project's limit (slipway project set --log-max-lines/--log-max-bytes); the build was stopped", slipway.LogLimitExceeded, j.limit)
	}
	var appErr *temporal.ApplicationError
	if err == nil || errors.As(err, &appErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if noSpace(err) {
		// A retry would meet the same full disk: fail now, with the reason.
		return j.buildFailed(j.phase, nil, "%s: no space left on device: the disk of the machine's volume (or of the server's data directory) is full; free space, then deploy again: %v", j.phase, err)
	}
	if msg := j.secrets.Redact(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// noSpace reports whether err is a write that failed for a full disk
// (ENOSPC, also as the text of a command's error).
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}

// fetchSecrets asks the server for the deployment's build secrets (see
// package buildsecrets: their values are not in the workflow's input).
func (a *Activities) fetchSecrets(ctx context.Context, in builder.BuildInput) ([]slipway.SecretValue, error) {
	if a.cfg.NATSURL == "" {
		return nil, temporal.NewNonRetryableApplicationError(
			"the project has build secrets, but this agent has no NATS address to fetch them from (natsURL in its configuration)", builder.ErrBuildFailed, nil, builder.FailureDetails{Step: "secrets"})
	}
	vals, err := buildsecrets.Fetch(ctx, a.cfg.NATSURL, in.Project, in.DeploymentID, in.SecretsToken, natsOptions(a.cfg.AgentConfig)...)
	if errors.Is(err, buildsecrets.ErrRefused) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), builder.ErrBuildFailed, nil, builder.FailureDetails{Step: "secrets"})
	} else if err != nil {
		return nil, err
	}
	return vals, nil
}

// writeSecrets writes the build secrets to 0600 files in a new 0700
// directory on the volume, for the build's --secret; the caller removes
// the directory after the build.
func (a *Activities) writeSecrets(secrets []slipway.SecretValue) (dir string, files, digests map[string]string, err error) {
	// One build at a time runs on a machine: a secrets directory left
	// behind is an agent's that was killed mid-build.
	stale, _ := filepath.Glob(filepath.Join(a.layout.Work, "secrets-*"))
	for _, d := range stale {
		_ = os.RemoveAll(d)
	}
	if len(secrets) == 0 {
		return "", nil, nil, nil
	}
	dir, err = os.MkdirTemp(a.layout.Work, "secrets-")
	if err != nil {
		return "", nil, nil, err
	}
	files, digests = map[string]string{}, map[string]string{}
	for _, s := range secrets {
		if err := slipway.ValidateSecretName(s.Name); err != nil {
			os.RemoveAll(dir)
			return "", nil, nil, err
		}
		path := filepath.Join(dir, s.Name)
		if err := os.WriteFile(path, s.Value, 0o600); err != nil {
			os.RemoveAll(dir)
			return "", nil, nil, err
		}
		files[s.Name], digests[s.Name] = path, s.Digest
	}
	return dir, files, digests, nil
}

// startHeartbeat heartbeats the activity of ctx until the returned stop,
// which waits for the heartbeat's goroutine to end.
func startHeartbeat(ctx context.Context, phase string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		heartbeat(ctx, phase)
	}()
	return func() {
		cancel()
		<-done
	}
}

func heartbeat(ctx context.Context, phase string) {
	t := time.NewTicker(builder.HeartbeatInterval)
	defer t.Stop()
	for {
		activity.RecordHeartbeat(ctx, phase)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// buildFailed is an error a retry cannot fix. Its message and tail end up
// in the deployment's record (and in Temporal's history): they are
// redacted like log lines, and the tail's lines as lines that may have
// been cut short (buildah keeps only the start of a very long line).
func (j *job) buildFailed(step string, tail []string, format string, args ...any) error {
	var redacted []string
	for _, l := range tail {
		redacted = append(redacted, j.secrets.RedactTruncated(l))
	}
	return temporal.NewNonRetryableApplicationError(j.secrets.Redact(fmt.Sprintf(format, args...)), builder.ErrBuildFailed, nil,
		builder.FailureDetails{Step: j.secrets.Redact(step), Tail: redacted})
}

func (a *Activities) checkoutDir(deployment string) string {
	return filepath.Join(a.layout.Work, deployment)
}

// Fetch brings the commit into the volume's git mirror (incrementally) and
// checks it out.
func (a *Activities) Fetch(ctx context.Context, in builder.BuildInput) (_ builder.FetchResult, err error) {
	j, err := a.begin(ctx, in, "fetch")
	if err != nil {
		return builder.FetchResult{}, err
	}
	ctx = j.ctx
	defer j.stop(&err)
	defer func() { err = j.scrub(err) }()
	if !slipway.ValidCommit(in.Commit) {
		return builder.FetchResult{}, j.buildFailed("fetch", nil, "invalid commit %q", in.Commit)
	}
	j.line("fetch", "fetching %s from %s", in.Commit, in.Repo)
	m := &gitmirror.Mirror{Dir: a.layout.Mirror, URL: in.Repo, Prepared: a.layout.Prepared, Ref: in.Ref}
	start := time.Now()
	if err := m.Fetch(ctx, in.Commit, j.writer("stderr", "fetch")); err != nil {
		if ctx.Err() != nil {
			return builder.FetchResult{}, ctx.Err()
		}
		var nf *gitmirror.NotFoundError
		if errors.As(err, &nf) {
			return builder.FetchResult{}, j.buildFailed("fetch", nil, "%v", err)
		}
		return builder.FetchResult{}, fmt.Errorf("fetch %s: %w", in.Commit, err)
	}
	dir := a.checkoutDir(in.DeploymentID)
	if err := m.Checkout(ctx, in.Commit, dir); err != nil {
		if ctx.Err() != nil {
			return builder.FetchResult{}, ctx.Err()
		}
		if refused, ok := errors.AsType[*gitmirror.RefusedError](err); ok {
			j.line("fetch", "%s", refused.Reason)
			_ = os.RemoveAll(dir)
			return builder.FetchResult{}, j.buildFailed("fetch", nil, "%s", refused.Reason)
		}
		return builder.FetchResult{}, fmt.Errorf("check out %s: %w", in.Commit, err)
	}
	j.line("fetch", "checked out %s in %s", in.Commit[:12], time.Since(start).Round(time.Millisecond))
	return builder.FetchResult{Dir: dir}, nil
}

// Build runs the builder (buildah) on the checkout, tagging the result as the
// deployment's image. When the build's inputs are identical to an earlier
// successful build on this machine, that build's image is tagged instead
// and the Dockerfile does not run at all. The slipway.* labels go on at
// Push, in the registry (configureInRegistry), with the config-only steps
// the Dockerfile ends with (configTail).
func (a *Activities) Build(ctx context.Context, in builder.BuildInput) (_ builder.BuildActivityResult, err error) {
	j, err := a.begin(ctx, in, "build")
	if err != nil {
		return builder.BuildActivityResult{}, err
	}
	ctx = j.ctx
	defer j.stop(&err)
	defer func() { err = j.scrub(err) }()
	// The Dockerfile is read once, as the builder will read it; every
	// decision below is taken from that reading.
	bf, err := a.readDockerfile(ctx, j, in)
	if err != nil {
		return builder.BuildActivityResult{}, err
	}
	secretsDir, secretFiles, secretDigests, err := a.writeSecrets(j.buildSecrets)
	if err != nil {
		return builder.BuildActivityResult{}, fmt.Errorf("write build secrets: %w", err)
	}
	if secretsDir != "" {
		defer os.RemoveAll(secretsDir)
		j.line("build", "build secrets: %s", strings.Join(slices.Sorted(maps.Keys(secretFiles)), ", "))
	}
	if len(in.BuildArgs) > 0 {
		j.line("build", "build arguments: %s", strings.Join(slices.Sorted(maps.Keys(in.BuildArgs)), ", "))
	}
	out := builder.BuildActivityResult{}
	var plan *stepPlan
	if !a.cfg.NoReuse {
		var reused bool
		if plan, reused, err = a.reuse(ctx, j, in, bf, secretDigests, &out); reused || err != nil {
			return out, err
		}
	}
	j.line("build", "building %s with %s", in.Image, a.builder)
	res, err := a.runBuild(ctx, j, in, bf, plan, secretFiles)
	if err != nil {
		return builder.BuildActivityResult{}, err
	}
	var why func(buildah.Step) string
	if plan != nil {
		res.Steps = plan.originalSteps(res.Steps)
		a.rememberSteps(plan.recs, plan.keys.keys, res.Steps)
		if plan.cutting() && plan.tail > 0 {
			out.ConfigTail, out.ImageConfig = bf.tailSteps(plan.tail)
		}
		why = plan.why
	}
	steps, cached := buildSteps(res.Steps, len(out.ImageConfig), why)
	out.Steps = steps
	j.line("build", "built %s: %d steps, %d cached, in %s", in.Image, len(res.Steps), cached, res.Duration.Round(time.Millisecond))
	return out, nil
}

// readDockerfile reads the build's Dockerfile from its checkout and checks
// it against the build policy. A Dockerfile that cannot build is a build
// failure, said in the log too.
func (a *Activities) readDockerfile(ctx context.Context, j *job, in builder.BuildInput) (*buildFile, error) {
	dir := in.Dir
	if dir == "" {
		dir = a.checkoutDir(in.DeploymentID)
	}
	if _, err := os.Stat(dir); err != nil {
		// The checkout vanished (volume deleted, machine replaced): a retry
		// of the whole build fetches again.
		return nil, fmt.Errorf("checkout %s is missing: %w", dir, err)
	}
	images := newImageResolver(ctx, a.resolveImage)
	bf, err := readBuildFile(dir, in.Context, in.Dockerfile, in.BuildArgs, images)
	if err == nil {
		for _, w := range bf.Warnings {
			j.line("build", "%s", w)
		}
		err = checkPolicy(bf)
	}
	if err != nil {
		j.line("build", "%s", slipway.ErrorMessage(err))
		return nil, j.buildFailed("build", nil, "%s", slipway.ErrorMessage(err))
	}
	return bf, nil
}

// reuse tags the image of an earlier build with identical inputs as this
// build's (reused true), or plans which of the Dockerfile's steps start
// from the recorded images of earlier builds. It sets out's InputKey, and
// for a reused image its ReusedFrom and config-only tail.
func (a *Activities) reuse(ctx context.Context, j *job, in builder.BuildInput, bf *buildFile, secretDigests map[string]string, out *builder.BuildActivityResult) (_ *stepPlan, reused bool, _ error) {
	inputs := bf.readInputs(in.BuildArgs, secretDigests)
	out.InputKey = inputs.key
	if inputs.key == "" {
		j.line("build", "the build's inputs cannot be pinned down (%s): the image of an identical earlier build is not reused", inputs.why)
	}
	if prev := a.reusable(inputs.key); inputs.key != "" && prev != "" {
		j.line("build", "inputs identical to the earlier build of %s: reusing its image without building", prev)
		if err := a.builder.Tag(ctx, prev, in.Image); err == nil {
			out.ReusedFrom = prev
			// Built without its config-only tail, as this build would be.
			if n := bf.configTail(); n > 0 {
				out.ConfigTail, out.ImageConfig = bf.tailSteps(n)
			}
			return nil, true, nil
		} else if ctx.Err() != nil {
			return nil, false, ctx.Err()
		} else {
			j.line("build", "could not reuse %s, no longer in the build cache (%v): building", prev, err)
		}
	}
	if !inputs.read {
		return nil, false, nil
	}
	plan := a.planSteps(bf, inputs.entries, secretDigests, in.BuildArgs)
	for _, l := range plan.keys.whyNotReused(bf) {
		j.line("build", "%s", l)
	}
	return plan, false, nil
}

// runBuild runs buildah on the build's Dockerfile, or on plan's rewritten
// one, and again as written when an image plan starts from is gone. A
// failed build is a build failure naming its step and last lines.
func (a *Activities) runBuild(ctx context.Context, j *job, in builder.BuildInput, bf *buildFile, plan *stepPlan, secretFiles map[string]string) (*buildah.BuildResult, error) {
	build := func(plan *stepPlan) (*buildah.BuildResult, error) {
		opts := buildah.BuildOptions{
			ContextDir: bf.contextDir,
			Dockerfile: bf.path,
			IgnoreFile: bf.ignoreFile,
			BuildArgs:  in.BuildArgs,
			Format:     bf.format,
			Tag:        in.Image,
			Secrets:    secretFiles,
			TLSVerify:  a.cfg.RegistryTLSVerify,
			Stdout:     plan.headers(j.writer("stdout", "build")),
			Stderr:     j.writer("stderr", "build"),
			Progress: func(s buildah.Step, cached int) {
				s, cached = plan.progress(s, cached)
				j.progress.update(func(p *slipway.Progress) {
					*p = slipway.Progress{Phase: slipway.PhaseBuild, Step: s.N, StepsTotal: s.Total, Stage: s.Stage, Stages: s.Stages,
						Instruction: s.Instruction, CachedSteps: cached}
				})
			},
		}
		if plan.cutting() {
			for _, l := range plan.summary() {
				j.line("build", "%s", l)
			}
			opts.Dockerfile = plan.file
		}
		return a.builder.Build(ctx, opts)
	}
	res, err := build(plan)
	if err != nil && ctx.Err() == nil && plan.lostImage(err) {
		// An image a stage was to start from is gone (housekeeping, or a
		// storage cleaned by hand): build as written.
		j.line("build", "an image of the earlier build's steps is no longer in the build cache: building every stage as written")
		a.forgetSteps(plan)
		plan.drop()
		res, err = build(plan)
	}
	plan.remove()
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	a.housekeep(ctx, j, in.Project, "")
	var be *buildah.BuildError
	if !errors.As(err, &be) {
		return nil, fmt.Errorf("build: %w", err)
	}
	be.Step = plan.mapHeader(be.Step)
	step := be.Step
	if step == "" {
		step = "build"
	}
	tail := make([]string, len(be.Tail))
	for i, l := range be.Tail {
		tail[i] = clarifyCopyError(plan.mapHeader(l))
	}
	return nil, j.buildFailed(step, tail, "%s", clarifyCopyError(be.Error()))
}

// buildSteps turns the builder's steps into the deployment's, the last
// configOnly of them applied at Push (in the registry), each with why
// (when known) it was not reused; and counts the cached ones.
func buildSteps(steps []buildah.Step, configOnly int, why func(buildah.Step) string) (out []slipway.BuildStep, cached int) {
	for i, s := range steps {
		// The config-only steps applied at Push come last (originalSteps).
		inRegistry := i >= len(steps)-configOnly
		bs := slipway.BuildStep{N: i + 1, Instruction: s.String(), Cached: s.Cached, InRegistry: inRegistry, DurationMs: s.Duration.Milliseconds()}
		if why != nil && !inRegistry {
			bs.Why = why(s)
		}
		out = append(out, bs)
		if s.Cached {
			cached++
		}
	}
	return out, cached
}

// reusable returns the image of an earlier successful build with inputs
// key, as recorded. Whether the storage still has it is found out by
// tagging it (Build falls back to building when that fails): one buildah
// process fewer on the way to a reused build.
func (a *Activities) reusable(key string) string {
	b, err := os.ReadFile(filepath.Join(a.layout.Inputs, key))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// remember records that inputs key built image ref.
func (a *Activities) remember(key, ref string) {
	if key == "" {
		return
	}
	if err := os.MkdirAll(a.layout.Inputs, 0o755); err != nil {
		a.cfg.Logger.Warn("record build inputs", "error", err)
		return
	}
	if err := os.WriteFile(filepath.Join(a.layout.Inputs, key), []byte(ref+"\n"), 0o644); err != nil {
		a.cfg.Logger.Warn("record build inputs", "error", err)
	}
}

// resolveImage asks the image's registry for the digest its tag points to
// and the image's config.
func (a *Activities) resolveImage(ctx context.Context, ref string) (string, *docker.Config, error) {
	return registryImage(ctx, ref, a.registry())
}

// Push pushes the image and removes the checkout.
func (a *Activities) Push(ctx context.Context, in builder.BuildInput) (_ builder.PushResult, err error) {
	j, err := a.begin(ctx, in, "push")
	if err != nil {
		return builder.PushResult{}, err
	}
	ctx = j.ctx
	defer j.stop(&err)
	defer func() { err = j.scrub(err) }()
	j.line("push", "pushing %s", in.Image)
	// pushFailed is retryable (registry and network errors pass); once the
	// retries are spent the deployment fails at "push" with this one line.
	pushFailed := func(what, prep string, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		j.line("push", "%s failed: %v", what, err)
		host, _, _ := strings.Cut(in.Image, "/")
		return temporal.NewApplicationError(
			j.secrets.Redact(fmt.Sprintf("%s %s %s failed: %s", what, prep, host, lastLine(err.Error()))), builder.ErrPushFailed, builder.FailureDetails{Step: "push"})
	}
	if _, err := a.builder.Push(ctx, in.Image, a.cfg.RegistryTLSVerify, j.writer("stderr", "push")); err != nil {
		return builder.PushResult{}, pushFailed("push", "to", err)
	}
	labels := map[string]string{"slipway.project": in.Project, "slipway.deployment": in.DeploymentID, "slipway.commit": in.Commit}
	tail := in.ConfigTail
	if tail == nil && len(in.ImageConfig) > 0 {
		// Sent by an agent before ConfigTail: plain instructions.
		if tail, err = legacyTail(in.ImageConfig); err != nil {
			return builder.PushResult{}, j.buildFailed("push", nil, "%v", err)
		}
	}
	if tail != nil {
		j.line("push", "applying %s to the image's config", describeTail(tail))
	}
	digest, err := configureInRegistry(ctx, in.Image, labels, tail, a.registry())
	if err != nil {
		return builder.PushResult{}, pushFailed("labelling the image", "in", err)
	}
	j.line("push", "pushed %s@%s", in.Image, digest)
	if err := os.RemoveAll(a.checkoutDir(in.DeploymentID)); err != nil {
		a.cfg.Logger.Warn("remove checkout", "deployment", in.DeploymentID, "error", err)
	}
	a.remember(in.InputKey, in.Image)
	a.housekeep(ctx, j, in.Project, in.Image)
	return builder.PushResult{Digest: digest}, nil
}

// resolveBuildPaths returns the context directory and Dockerfile inside the
// checkout at root, refusing paths (or symlinks) that lead outside it.
func resolveBuildPaths(root, contextPath, dockerfile string) (string, string, error) {
	if contextPath == "" {
		contextPath = "."
	}
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if err := slipway.ValidateRelPath("context", contextPath); err != nil {
		return "", "", err
	}
	if err := slipway.ValidateRelPath("Dockerfile path", dockerfile); err != nil {
		return "", "", err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", "", err
	}
	within := func(what, p string) (string, error) {
		real, err := filepath.EvalSymlinks(filepath.Join(realRoot, p))
		if err != nil {
			if os.IsNotExist(err) {
				return "", slipway.Errorf(slipway.EINVALID, "%s %q does not exist in the repository", what, p)
			}
			return "", slipway.Errorf(slipway.EINVALID, "%s %q: %v", what, p, err)
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
			return "", slipway.Errorf(slipway.EINVALID, "%s %q points outside the repository", what, p)
		}
		return real, nil
	}
	ctxDir, err := within("context", contextPath)
	if err != nil {
		return "", "", err
	}
	df, err := within("Dockerfile", dockerfile)
	if err != nil {
		return "", "", err
	}
	return ctxDir, df, nil
}

// lastLine is the last non-empty line of s, without the builder's "Error: ".
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-1]), "Error: ")
}
