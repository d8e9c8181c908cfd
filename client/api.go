package client

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slipway-ci/slipway"
)

// AddProjectInput describes a project to register. Empty optional fields
// take the server's defaults (branch main, Dockerfile, context ".", a
// random webhook secret).
type AddProjectInput struct {
	Name          string
	Repo          string
	Branch        string
	Dockerfile    string
	Context       string
	WebhookSecret string
	// LogRetention and LogRetentionSize are the project's log retention
	// limits as slipway.ParseLogAge and slipway.ParseLogSize read them
	// ("30d", "500MB"); empty keeps everything.
	LogRetention     string
	LogRetentionSize string
	// LogMaxLines and LogMaxBytes bound each deployment's log as
	// slipway.ParseLogMaxLines and slipway.ParseLogMaxBytes read them
	// ("100000", "100MB"); empty takes the server's defaults.
	LogMaxLines, LogMaxBytes string
	// BuildArgs are the values of the Dockerfile's ARGs (none when empty).
	BuildArgs []slipway.BuildArg
	// App sets how the project's app runs; nil fields take the defaults.
	App AppSettingsInput
}

// AddProjectResult is a registered project with what to configure in the
// forge. The secret is shown only once.
type AddProjectResult struct {
	Project       *slipway.Project
	WebhookURL    string
	WebhookSecret string
}

// DeployInput asks for a deployment of a project's commit, or of the head
// of Ref (default: the project's branch) when Commit is empty.
type DeployInput struct {
	Project string
	Commit  string
	Ref     string
}

const projectFields = `name repo branch dockerfile context createdAt logRetention { maxAgeSeconds maxBytes } logLimit { maxLines maxBytes } buildArgs { name value }
	app { memoryBytes cpus healthPath idleTimeoutSeconds stopAfterSeconds port }`

const deploymentFields = `id project ref commit trigger status image digest error failedStep
	timings { phase ms } steps { n instruction cached inRegistry durationMs why } createdAt startedAt finishedAt logPruned logComplete logCompleteAt logLines preview
	progress { phase step stepsTotal stage stages instruction cachedSteps }`

const machineFields = `project provider isolation user state pid volumeDir volumeBytes lastWokeAt lastWakeMs lastSleptAt error updatedAt`

// AddProject registers a project.
func (c *Client) AddProject(ctx context.Context, in AddProjectInput) (*AddProjectResult, error) {
	vars := map[string]any{"name": in.Name, "repo": in.Repo}
	for k, v := range map[string]string{"branch": in.Branch, "dockerfile": in.Dockerfile, "context": in.Context, "webhookSecret": in.WebhookSecret,
		"logRetention": in.LogRetention, "logRetentionSize": in.LogRetentionSize, "logMaxLines": in.LogMaxLines, "logMaxBytes": in.LogMaxBytes} {
		if v != "" {
			vars[k] = v
		}
	}
	if len(in.BuildArgs) > 0 {
		vars["buildArgs"] = in.BuildArgs
	}
	in.App.vars(vars)
	var out struct {
		AddProject struct {
			Project       slipway.Project `json:"project"`
			WebhookURL    string          `json:"webhookURL"`
			WebhookSecret string          `json:"webhookSecret"`
		} `json:"addProject"`
	}
	q := `mutation($in: AddProjectInput!) { addProject(input: $in) { project { ` + projectFields + ` } webhookURL webhookSecret } }`
	if err := c.do(ctx, q, map[string]any{"in": vars}, &out); err != nil {
		return nil, err
	}
	p := out.AddProject.Project
	p.WebhookSecret = out.AddProject.WebhookSecret
	return &AddProjectResult{Project: &p, WebhookURL: out.AddProject.WebhookURL, WebhookSecret: out.AddProject.WebhookSecret}, nil
}

// SetLogRetention changes a project's log retention: maxAge ("30d") and
// maxSize ("500MB") replace the current limits when not nil ("off" removes
// one). It returns the project as changed.
func (c *Client) SetLogRetention(ctx context.Context, project string, maxAge, maxSize *string) (*slipway.Project, error) {
	vars := map[string]any{"project": project}
	if maxAge != nil {
		vars["maxAge"] = *maxAge
	}
	if maxSize != nil {
		vars["maxSize"] = *maxSize
	}
	var out struct {
		SetLogRetention slipway.Project `json:"setLogRetention"`
	}
	q := `mutation($project: String!, $maxAge: String, $maxSize: String) {
	setLogRetention(project: $project, maxAge: $maxAge, maxSize: $maxSize) { ` + projectFields + ` } }`
	if err := c.do(ctx, q, vars, &out); err != nil {
		return nil, err
	}
	return &out.SetLogRetention, nil
}

// SetBuildArgs changes a project's build arguments: each of set is added
// or replaces the one of its name, each name in unset is removed. It
// returns the project as changed.
func (c *Client) SetBuildArgs(ctx context.Context, project string, set []slipway.BuildArg, unset []string) (*slipway.Project, error) {
	var out struct {
		SetBuildArgs slipway.Project `json:"setBuildArgs"`
	}
	q := `mutation($project: String!, $set: [BuildArgInput!], $unset: [String!]) {
	setBuildArgs(project: $project, set: $set, unset: $unset) { ` + projectFields + ` } }`
	if err := c.do(ctx, q, map[string]any{"project": project, "set": set, "unset": unset}, &out); err != nil {
		return nil, err
	}
	return &out.SetBuildArgs, nil
}

// Project returns one project, or ENOTFOUND. Its secrets are never
// returned.
func (c *Client) Project(ctx context.Context, name string) (*slipway.Project, error) {
	v, err := c.ProjectView(ctx, name)
	if err != nil {
		return nil, err
	}
	return &v.Project, nil
}

// ProjectView is a project with the webhook URL forges send its pushes to.
type ProjectView struct {
	slipway.Project
	// WebhookURL is the project's own webhook URL,
	// <server>/webhooks/github/<hook id>.
	WebhookURL string `json:"webhookURL"`
	// AppURL is where the project's app answers, nil when the server
	// serves no apps.
	AppURL *string `json:"appURL"`
}

// ProjectView returns the named project with its webhook URL, or
// ENOTFOUND.
func (c *Client) ProjectView(ctx context.Context, name string) (*ProjectView, error) {
	var out struct {
		Project *ProjectView `json:"project"`
	}
	if err := c.do(ctx, `query($n: String!) { project(name: $n) { `+projectFields+` webhookURL appURL } }`, map[string]any{"n": name}, &out); err != nil {
		return nil, err
	}
	if out.Project == nil {
		return nil, &Error{Code: slipway.ENOTFOUND, Message: fmt.Sprintf("project %q not found", name)}
	}
	return out.Project, nil
}

// Projects lists every project by name. Secrets are never returned.
func (c *Client) Projects(ctx context.Context) ([]*slipway.Project, error) {
	var out struct {
		Projects []*slipway.Project `json:"projects"`
	}
	if err := c.do(ctx, `{ projects { `+projectFields+` } }`, nil, &out); err != nil {
		return nil, err
	}
	return out.Projects, nil
}

// Deploy starts a deployment and returns it (status queued).
func (c *Client) Deploy(ctx context.Context, in DeployInput) (*slipway.Deployment, error) {
	vars := map[string]any{"project": in.Project}
	if in.Commit != "" {
		vars["commit"] = in.Commit
	}
	if in.Ref != "" {
		vars["ref"] = in.Ref
	}
	var out struct {
		Deploy deployment `json:"deploy"`
	}
	q := `mutation($in: DeployInput!) { deploy(input: $in) { ` + deploymentFields + ` } }`
	if err := c.do(ctx, q, map[string]any{"in": vars}, &out); err != nil {
		return nil, err
	}
	return out.Deploy.domain(), nil
}

// Deployment returns one deployment; an unknown id is a not_found error.
func (c *Client) Deployment(ctx context.Context, id string) (*slipway.Deployment, error) {
	var out struct {
		Deployment *deployment `json:"deployment"`
	}
	if err := c.do(ctx, `query($id: ID!) { deployment(id: $id) { `+deploymentFields+` } }`, map[string]any{"id": id}, &out); err != nil {
		return nil, err
	}
	if out.Deployment == nil {
		return nil, notFound(id)
	}
	return out.Deployment.domain(), nil
}

// Deployments lists a project's deployments, newest first: at most first,
// or the server's default page when first <= 0.
func (c *Client) Deployments(ctx context.Context, project string, first int) ([]*slipway.Deployment, error) {
	vars := map[string]any{"project": project}
	if first > 0 {
		vars["first"] = first
	}
	var out struct {
		Deployments []deployment `json:"deployments"`
	}
	q := `query($project: String!, $first: Int) { deployments(project: $project, first: $first) { ` + deploymentFields + ` } }`
	if err := c.do(ctx, q, vars, &out); err != nil {
		return nil, err
	}
	ds := make([]*slipway.Deployment, len(out.Deployments))
	for i := range out.Deployments {
		ds[i] = out.Deployments[i].domain()
	}
	return ds, nil
}

// Logs returns one page of a deployment's stored log lines, those numbered
// from on, in order: at most first, or the server's default page when
// first <= 0. Read the next page from the last line's N + 1; a page
// shorter than asked for is the last.
func (c *Client) Logs(ctx context.Context, id string, from int64, first int) ([]slipway.LogLine, error) {
	vars := map[string]any{"id": id, "from": from}
	if first > 0 {
		vars["first"] = first
	}
	var out struct {
		Deployment *struct {
			Logs []logLine `json:"logs"`
		} `json:"deployment"`
	}
	q := `query($id: ID!, $from: Int, $first: Int) { deployment(id: $id) { logs(from: $from, first: $first) { n time stream step text } } }`
	if err := c.do(ctx, q, vars, &out); err != nil {
		return nil, err
	}
	if out.Deployment == nil {
		return nil, notFound(id)
	}
	lines := make([]slipway.LogLine, len(out.Deployment.Logs))
	for i := range out.Deployment.Logs {
		lines[i] = out.Deployment.Logs[i].domain(id)
	}
	return lines, nil
}

// Machines lists every project's builder machine by project name;
// projects that never built have none.
func (c *Client) Machines(ctx context.Context) ([]*slipway.Machine, error) {
	var out struct {
		Machines []machine `json:"machines"`
	}
	if err := c.do(ctx, `{ machines { `+machineFields+` } }`, nil, &out); err != nil {
		return nil, err
	}
	ms := make([]*slipway.Machine, len(out.Machines))
	for i := range out.Machines {
		ms[i] = out.Machines[i].domain()
	}
	return ms, nil
}

func notFound(id string) error {
	return &Error{Code: slipway.ENOTFOUND, Message: fmt.Sprintf("deployment %q not found", id)}
}

// deployment is a Deployment as the API sends it.
type deployment struct {
	ID         string  `json:"id"`
	Project    string  `json:"project"`
	Ref        string  `json:"ref"`
	Commit     string  `json:"commit"`
	Trigger    string  `json:"trigger"`
	Status     string  `json:"status"`
	Image      string  `json:"image"`
	Digest     string  `json:"digest"`
	Error      *string `json:"error"`
	FailedStep *string `json:"failedStep"`
	Timings    []struct {
		Phase string `json:"phase"`
		Ms    int64  `json:"ms"`
	} `json:"timings"`
	Steps      []slipway.BuildStep `json:"steps"`
	CreatedAt  time.Time           `json:"createdAt"`
	StartedAt  *time.Time          `json:"startedAt"`
	FinishedAt *time.Time          `json:"finishedAt"`
	LogPruned  bool                `json:"logPruned"`
	// LogComplete is null for servers older than the field too.
	LogComplete   *bool      `json:"logComplete"`
	LogCompleteAt *time.Time `json:"logCompleteAt"`
	LogLines      int64      `json:"logLines"`
	// Preview is null for the project's own deployments (and from servers
	// older than the field).
	Preview  *int `json:"preview"`
	Progress *struct {
		Phase       string  `json:"phase"`
		Step        int     `json:"step"`
		StepsTotal  int     `json:"stepsTotal"`
		Stage       *int    `json:"stage"`
		Stages      *int    `json:"stages"`
		Instruction *string `json:"instruction"`
		CachedSteps int     `json:"cachedSteps"`
	} `json:"progress"`
}

func (d *deployment) domain() *slipway.Deployment {
	out := &slipway.Deployment{
		ID:          d.ID,
		Project:     d.Project,
		Ref:         d.Ref,
		Commit:      d.Commit,
		Trigger:     slipway.Trigger(d.Trigger),
		Status:      slipway.Status(strings.ToLower(d.Status)),
		Image:       d.Image,
		Digest:      d.Digest,
		Steps:       d.Steps,
		CreatedAt:   d.CreatedAt,
		StartedAt:   d.StartedAt,
		FinishedAt:  d.FinishedAt,
		LogPruned:   d.LogPruned,
		LogComplete: d.LogComplete, LogCompleteAt: d.LogCompleteAt, LogLines: d.LogLines,
	}
	if d.Preview != nil {
		out.Preview = *d.Preview
	}
	if p := d.Progress; p != nil {
		out.Progress = &slipway.Progress{Phase: p.Phase, Step: p.Step, StepsTotal: p.StepsTotal, CachedSteps: p.CachedSteps}
		if p.Stage != nil {
			out.Progress.Stage = *p.Stage
		}
		if p.Stages != nil {
			out.Progress.Stages = *p.Stages
		}
		if p.Instruction != nil {
			out.Progress.Instruction = *p.Instruction
		}
	}
	if d.Error != nil {
		out.Error = *d.Error
	}
	if d.FailedStep != nil {
		out.FailedStep = *d.FailedStep
	}
	if len(d.Timings) > 0 {
		out.Timings = make(map[string]int64, len(d.Timings))
		for _, t := range d.Timings {
			out.Timings[t.Phase] = t.Ms
		}
	}
	return out
}

// machine is a Machine as the API sends it.
type machine struct {
	Project     string     `json:"project"`
	Provider    string     `json:"provider"`
	Isolation   string     `json:"isolation"`
	User        *string    `json:"user"`
	State       string     `json:"state"`
	PID         *int       `json:"pid"`
	VolumeDir   string     `json:"volumeDir"`
	VolumeBytes *int64     `json:"volumeBytes"`
	LastWokeAt  *time.Time `json:"lastWokeAt"`
	LastWakeMs  *int64     `json:"lastWakeMs"`
	LastSleptAt *time.Time `json:"lastSleptAt"`
	Error       *string    `json:"error"`
	UpdatedAt   time.Time  `json:"updatedAt"`
}

func (m *machine) domain() *slipway.Machine {
	out := &slipway.Machine{
		Project:     m.Project,
		Provider:    m.Provider,
		Isolation:   m.Isolation,
		State:       slipway.MachineState(strings.ToLower(m.State)),
		VolumeDir:   m.VolumeDir,
		LastWokeAt:  m.LastWokeAt,
		LastSleptAt: m.LastSleptAt,
		UpdatedAt:   m.UpdatedAt,
	}
	if m.PID != nil {
		out.PID = *m.PID
	}
	if m.User != nil {
		out.User = *m.User
	}
	if m.VolumeBytes != nil {
		out.VolumeBytes = *m.VolumeBytes
	}
	if m.LastWakeMs != nil {
		out.LastWakeMs = *m.LastWakeMs
	}
	if m.Error != nil {
		out.Error = *m.Error
	}
	return out
}

// Rollback deploys the image of an earlier successful deployment of
// project again, without building; to is a deployment id or commit SHA, or
// empty for the one before the latest.
func (c *Client) Rollback(ctx context.Context, project, to string) (*slipway.Deployment, error) {
	vars := map[string]any{"project": project}
	if to != "" {
		vars["to"] = to
	}
	var out struct {
		Rollback deployment `json:"rollback"`
	}
	q := `mutation($project: String!, $to: String) { rollback(project: $project, to: $to) { ` + deploymentFields + ` } }`
	if err := c.do(ctx, q, vars, &out); err != nil {
		return nil, err
	}
	return out.Rollback.domain(), nil
}

// Cancel stops a queued or running deployment.
func (c *Client) Cancel(ctx context.Context, id string) (*slipway.Deployment, error) {
	var out struct {
		Cancel deployment `json:"cancel"`
	}
	q := `mutation($id: ID!) { cancel(id: $id) { ` + deploymentFields + ` } }`
	if err := c.do(ctx, q, map[string]any{"id": id}, &out); err != nil {
		return nil, err
	}
	return out.Cancel.domain(), nil
}

// SearchLogs returns one page of a deployment's stored lines that q
// selects (q.Deployment is id): lines numbered q.From on whose text has
// every word of q.Search and whose step is q.Step, at most q.Limit (or the
// server's default page when <= 0).
func (c *Client) SearchLogs(ctx context.Context, q slipway.LogQuery) ([]slipway.LogLine, error) {
	vars := map[string]any{"id": q.Deployment, "from": q.From}
	if q.Limit > 0 {
		vars["first"] = q.Limit
	}
	if q.Search != "" {
		vars["search"] = q.Search
	}
	if q.Step != "" {
		vars["step"] = q.Step
	}
	var out struct {
		Deployment *struct {
			Logs []logLine `json:"logs"`
		} `json:"deployment"`
	}
	query := `query($id: ID!, $from: Int, $first: Int, $search: String, $step: String) {
	deployment(id: $id) { logs(from: $from, first: $first, search: $search, step: $step) { n time stream step text } } }`
	if err := c.do(ctx, query, vars, &out); err != nil {
		return nil, err
	}
	if out.Deployment == nil {
		return nil, notFound(q.Deployment)
	}
	lines := make([]slipway.LogLine, len(out.Deployment.Logs))
	for i := range out.Deployment.Logs {
		lines[i] = out.Deployment.Logs[i].domain(q.Deployment)
	}
	return lines, nil
}

// CreateToken creates an API token named name and returns the token (shown
// only now) with its record. With scopes ("push:base/*", "pull:demo") it
// is a registry token, which the API refuses (see slipway.APIToken.Scopes).
func (c *Client) CreateToken(ctx context.Context, name string, scopes ...string) (string, *slipway.APIToken, error) {
	var out struct {
		CreateToken struct {
			Token    string           `json:"token"`
			APIToken slipway.APIToken `json:"apiToken"`
		} `json:"createToken"`
	}
	q := `mutation($name: String, $scopes: [String!]) { createToken(name: $name, scopes: $scopes) { token apiToken { ` + tokenFields + ` } } }`
	if err := c.do(ctx, q, map[string]any{"name": name, "scopes": scopes}, &out); err != nil {
		return "", nil, err
	}
	return out.CreateToken.Token, &out.CreateToken.APIToken, nil
}

// Tokens lists the API tokens, oldest first (their records only).
func (c *Client) Tokens(ctx context.Context) ([]*slipway.APIToken, error) {
	var out struct {
		Tokens []*slipway.APIToken `json:"tokens"`
	}
	if err := c.do(ctx, `{ tokens { `+tokenFields+` } }`, nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// RevokeToken revokes the API token with the id.
func (c *Client) RevokeToken(ctx context.Context, id string) (*slipway.APIToken, error) {
	var out struct {
		RevokeToken slipway.APIToken `json:"revokeToken"`
	}
	if err := c.do(ctx, `mutation($id: ID!) { revokeToken(id: $id) { `+tokenFields+` } }`, map[string]any{"id": id}, &out); err != nil {
		return nil, err
	}
	return &out.RevokeToken, nil
}

const tokenFields = `id name createdAt lastUsedAt scopes { action repo }`

// SetSecret creates or replaces a project's build secret. The answer
// never carries the value.
func (c *Client) SetSecret(ctx context.Context, project, name string, value []byte) (*slipway.Secret, error) {
	var out struct {
		SetSecret slipway.Secret `json:"setSecret"`
	}
	q := `mutation($p: String!, $n: String!, $v: String!) { setSecret(project: $p, name: $n, value: $v) { name updatedAt } }`
	if err := c.do(ctx, q, map[string]any{"p": project, "n": name, "v": string(value)}, &out); err != nil {
		return nil, err
	}
	out.SetSecret.Project = project
	return &out.SetSecret, nil
}

// DeleteSecret removes a project's build secret.
func (c *Client) DeleteSecret(ctx context.Context, project, name string) (*slipway.Secret, error) {
	var out struct {
		DeleteSecret slipway.Secret `json:"deleteSecret"`
	}
	q := `mutation($p: String!, $n: String!) { deleteSecret(project: $p, name: $n) { name updatedAt } }`
	if err := c.do(ctx, q, map[string]any{"p": project, "n": name}, &out); err != nil {
		return nil, err
	}
	out.DeleteSecret.Project = project
	return &out.DeleteSecret, nil
}

// DeleteProject removes a project with its machine, builder user, secrets
// and deployments' records; it returns how many deployments it removed.
func (c *Client) DeleteProject(ctx context.Context, name string) (int, error) {
	var out struct {
		DeleteProject struct {
			DeploymentsRemoved int `json:"deploymentsRemoved"`
		} `json:"deleteProject"`
	}
	q := `mutation($n: String!) { deleteProject(name: $n) { name deploymentsRemoved } }`
	if err := c.do(ctx, q, map[string]any{"n": name}, &out); err != nil {
		return 0, err
	}
	return out.DeleteProject.DeploymentsRemoved, nil
}

// Secrets lists a project's build secrets by name (never their values).
func (c *Client) Secrets(ctx context.Context, project string) ([]*slipway.Secret, error) {
	var out struct {
		Project *struct {
			Secrets []*slipway.Secret `json:"secrets"`
		} `json:"project"`
	}
	if err := c.do(ctx, `query($p: String!) { project(name: $p) { secrets { name updatedAt } } }`, map[string]any{"p": project}, &out); err != nil {
		return nil, err
	}
	if out.Project == nil {
		return nil, &Error{Code: slipway.ENOTFOUND, Message: fmt.Sprintf("project %q not found", project)}
	}
	for _, s := range out.Project.Secrets {
		s.Project = project
	}
	return out.Project.Secrets, nil
}
