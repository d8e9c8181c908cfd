package temporalserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	commandpb "go.temporal.io/api/command/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/tasktoken"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
)

// Access is who may call the public frontend: each caller presents a
// credential.Temporal credential as `authorization: Bearer <token>`
// (client.NewAPIKeyStaticCredentials).
//
//   - The server's own credential (project "") may do everything.
//   - An agent's credential of project P may do what an agent needs, no
//     more: poll its queue builder.Queue(P) (and the sticky queues its
//     SDK worker makes for it), complete, fail and heartbeat the tasks
//     of P's BuildWorkflows (builder.BuildWorkflowID) with commands that
//     stay on that queue, and send the agent's signals
//     (builder.SignalProgress, builder.SignalLogEnd) to P's deployments'
//     workflows (builder.DeploymentWorkflowID); plus what an SDK client
//     asks at start (GetSystemInfo, DescribeNamespace).
//   - Anyone else: nothing but the gRPC health check.
//
// Temporal's own services call each other and the internal frontend over
// TLS with a certificate only this process holds (internode.go).
type Access struct {
	// Credentials checks the callers' credentials. Required.
	Credentials *credential.Issuer
	// DeploymentProject returns the project of a deployment, to tie a
	// workflow id to the project whose agent may touch it. Required.
	DeploymentProject func(ctx context.Context, deployment string) (string, error)
}

// claimMapper maps a caller's bearer token to its claims: the server's
// credential to a system admin, an agent's to Subject "agent" with its
// project in Extensions.
type claimMapper struct {
	creds *credential.Issuer
}

// agentSubject is the Subject of an agent's claims.
const agentSubject = "agent"

func (m claimMapper) GetClaims(info *authorization.AuthInfo) (*authorization.Claims, error) {
	tok, ok := cutPrefixFold(info.AuthToken, "Bearer ")
	if !ok {
		return nil, errors.New("no bearer token")
	}
	c, err := m.creds.Verify(credential.Temporal, strings.TrimSpace(tok))
	if err != nil {
		return nil, err
	}
	if c.Server() {
		return &authorization.Claims{Subject: "slipway-server", System: authorization.RoleAdmin}, nil
	}
	return &authorization.Claims{Subject: agentSubject, Extensions: c.Project}, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// authorizer decides each call with the claims claimMapper made.
type authorizer struct {
	namespace string
	access    Access
	tokens    *tasktoken.Serializer
}

var (
	allow = authorization.Result{Decision: authorization.DecisionAllow}
	deny  = authorization.Result{Decision: authorization.DecisionDeny}
)

func (a *authorizer) Authorize(ctx context.Context, c *authorization.Claims, t *authorization.CallTarget) (authorization.Result, error) {
	if c != nil && c.System&authorization.RoleAdmin != 0 {
		return allow, nil
	}
	if t.APIName == "/grpc.health.v1.Health/Check" {
		return allow, nil
	}
	if c == nil || c.Subject != agentSubject {
		return deny, nil
	}
	project, _ := c.Extensions.(string)
	method, ok := strings.CutPrefix(t.APIName, api.WorkflowServicePrefix)
	if project == "" || !ok {
		return deny, nil
	}
	if method == "GetSystemInfo" {
		return allow, nil
	}
	if t.Namespace != a.namespace {
		return deny, nil
	}
	if err := a.agentMay(ctx, project, method, t.Request); err != nil {
		return authorization.Result{Decision: authorization.DecisionDeny, Reason: err.Error()}, nil
	}
	return allow, nil
}

// agentMay returns nil if the agent of project may make the call, else
// why not.
func (a *authorizer) agentMay(ctx context.Context, project, method string, req any) error {
	switch r := req.(type) {
	case *workflowservice.DescribeNamespaceRequest, *workflowservice.ShutdownWorkerRequest,
		*workflowservice.RecordWorkerHeartbeatRequest:
		return nil
	case *workflowservice.PollWorkflowTaskQueueRequest:
		return agentQueue(project, r.GetTaskQueue().GetName(), r.GetTaskQueue().GetKind())
	case *workflowservice.PollActivityTaskQueueRequest:
		return agentQueue(project, r.GetTaskQueue().GetName(), r.GetTaskQueue().GetKind())
	case *workflowservice.RespondWorkflowTaskCompletedRequest:
		if err := a.buildTask(ctx, project, r.GetTaskToken()); err != nil {
			return err
		}
		if r.GetStickyAttributes() != nil {
			return errors.New("an agent's workflow tasks are not sticky")
		}
		return agentCommands(project, r.GetCommands())
	case *workflowservice.RespondWorkflowTaskFailedRequest:
		return a.buildTask(ctx, project, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskCompletedRequest:
		return a.buildTask(ctx, project, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskFailedRequest:
		return a.buildTask(ctx, project, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskCanceledRequest:
		return a.buildTask(ctx, project, r.GetTaskToken())
	case *workflowservice.RecordActivityTaskHeartbeatRequest:
		return a.buildTask(ctx, project, r.GetTaskToken())
	case *workflowservice.SignalWorkflowExecutionRequest:
		if !slices.Contains([]string{builder.SignalProgress, builder.SignalLogEnd}, r.GetSignalName()) {
			return fmt.Errorf("an agent does not send signal %q", r.GetSignalName())
		}
		d, ok := strings.CutPrefix(r.GetWorkflowExecution().GetWorkflowId(), builder.DeploymentWorkflowID(""))
		if !ok {
			return errors.New("an agent signals deployment workflows only")
		}
		return a.ofProject(ctx, project, d)
	}
	return fmt.Errorf("an agent may not call %s", method)
}

// agentQueue allows project's queue only, and no sticky queue: matching
// tells a sticky queue from a normal one by its name alone, so a "sticky"
// poll of another queue's name would take that queue's tasks, and a
// sticky queue's name (the SDK's host name and a UUID) says nothing of
// its project. Agents run without sticky execution.
func agentQueue(project, name string, kind enumspb.TaskQueueKind) error {
	if q := builder.Queue(project); name != q || kind == enumspb.TASK_QUEUE_KIND_STICKY {
		return fmt.Errorf("the agent of %s polls %s only, not sticky", project, q)
	}
	return nil
}

// buildTask checks that a task token is of one of project's
// BuildWorkflows.
func (a *authorizer) buildTask(ctx context.Context, project string, token []byte) error {
	t, err := a.tokens.Deserialize(token)
	if err != nil {
		return fmt.Errorf("bad task token: %w", err)
	}
	if len(t.GetComponentRef()) > 0 {
		return errors.New("an agent completes tasks of workflows only")
	}
	d, ok := strings.CutPrefix(t.GetWorkflowId(), builder.BuildWorkflowID(""))
	if !ok {
		return errors.New("an agent completes tasks of build workflows only")
	}
	return a.ofProject(ctx, project, d)
}

func (a *authorizer) ofProject(ctx context.Context, project, deployment string) error {
	p, err := a.access.DeploymentProject(ctx, deployment)
	if err != nil {
		return fmt.Errorf("deployment %q: %w", deployment, err)
	}
	if p != project {
		return fmt.Errorf("deployment %q is not of %s", deployment, project)
	}
	return nil
}

// agentCommands allows the commands a BuildWorkflow makes: activities on
// its own queue, timers, markers, and its own end. Never a child
// workflow, a signal or cancellation of another workflow, or an activity
// on another queue (the server's control queue runs the server's
// activities).
func agentCommands(project string, cmds []*commandpb.Command) error {
	for _, c := range cmds {
		switch c.GetCommandType() {
		case enumspb.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK:
			q := c.GetScheduleActivityTaskCommandAttributes().GetTaskQueue().GetName()
			if q != "" && q != builder.Queue(project) {
				return fmt.Errorf("an agent schedules activities on %s only", builder.Queue(project))
			}
		case enumspb.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK, enumspb.COMMAND_TYPE_START_TIMER,
			enumspb.COMMAND_TYPE_CANCEL_TIMER, enumspb.COMMAND_TYPE_RECORD_MARKER,
			enumspb.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION, enumspb.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
			enumspb.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION, enumspb.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
			enumspb.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES, enumspb.COMMAND_TYPE_PROTOCOL_MESSAGE:
		default:
			return fmt.Errorf("an agent's workflow may not %s", c.GetCommandType())
		}
	}
	return nil
}
