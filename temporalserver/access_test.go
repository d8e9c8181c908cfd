package temporalserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	commandpb "go.temporal.io/api/command/v1"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tokenspb "go.temporal.io/server/api/token/v1"
	"go.temporal.io/server/common/tasktoken"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
)

const testNamespace = "access-test"

// accessServer starts an embedded Temporal whose deployments "dp*" are
// of project p and "dq*" of project q.
func accessServer(t *testing.T) (*Server, *credential.Issuer) {
	t.Helper()
	creds, err := credential.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Start(Config{
		DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"),
		Namespace:    testNamespace,
		Access: Access{Credentials: creds, DeploymentProject: func(_ context.Context, d string) (string, error) {
			if len(d) > 1 && (d[:2] == "dp" || d[:2] == "dq") {
				return d[1:2], nil
			}
			return "", errors.New("no such deployment")
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Stop)
	return ts, creds
}

// dial returns a client presenting credential tok ("" for none).
func dial(t *testing.T, ts *Server, tok string) client.Client {
	t.Helper()
	opts := client.Options{HostPort: ts.HostPort(), Namespace: testNamespace}
	opts.ConnectionOptions.TLSDisabled = true
	if tok != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(tok)
	}
	c, err := client.DialContext(t.Context(), opts)
	if err != nil {
		t.Fatalf("dial with credential %.12q: %v", tok, err)
	}
	t.Cleanup(c.Close)
	return c
}

// raw is a bare gRPC client of the frontend presenting tok ("" for none),
// to make calls an SDK would not.
func raw(t *testing.T, ts *Server, tok string) (workflowservice.WorkflowServiceClient, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient(ts.HostPort(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := t.Context()
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	return workflowservice.NewWorkflowServiceClient(conn), ctx
}

func issue(t *testing.T, creds *credential.Issuer, project string) string {
	t.Helper()
	var tok string
	var err error
	if project == "" {
		tok, err = creds.Server(credential.Temporal)
	} else {
		tok, err = creds.Agent(credential.Temporal, project, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("%s: %v, want PermissionDenied", what, err)
	}
}

// The server's credential may do everything; an agent's polls and
// completes its own project's build workflow; and nothing else gets in.
func TestAccess(t *testing.T) {
	ts, creds := accessServer(t)
	server := dial(t, ts, issue(t, creds, ""))
	pTok, qTok := issue(t, creds, "p"), issue(t, creds, "q")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	run, err := server.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: builder.BuildWorkflowID("dp1"), TaskQueue: builder.Queue("p")}, "Build", "x")
	if err != nil {
		t.Fatal(err)
	}
	agentRunsBuild(t, ts, pTok)
	var got string
	if err := run.Get(ctx, &got); err != nil || got != "built" {
		t.Fatalf("p's build = %q, %v", got, err)
	}
	// The agent's signals to its own deployment's workflow get through
	// the check (the workflow does not exist: NotFound, not denied).
	agent := dial(t, ts, pTok)
	err = agent.SignalWorkflow(ctx, builder.DeploymentWorkflowID("dp1"), "", builder.SignalProgress, 1)
	if status.Code(errors.Unwrap(err)) == codes.PermissionDenied || err == nil {
		t.Errorf("p signals its own deployment: %v, want NotFound", err)
	}

	t.Run("no credential", func(t *testing.T) { noCredential(t, ts) })
	t.Run("another project's", func(t *testing.T) { otherProject(t, ts, server, qTok, run.GetRunID()) })
	t.Run("forged", func(t *testing.T) { forgedTasks(t, ts, server, pTok) })
}

func noCredential(t *testing.T, ts *Server) {
	c, ctx := raw(t, ts, "")
	_, err := c.GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
	wantDenied(t, "GetSystemInfo", err)
	_, err = c.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: testNamespace})
	wantDenied(t, "ListWorkflowExecutions", err)
	_, err = c.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
		Namespace: testNamespace, Execution: &commonpb.WorkflowExecution{WorkflowId: builder.BuildWorkflowID("dp1")}})
	wantDenied(t, "GetWorkflowExecutionHistory", err)
	_, err = c.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{
		Namespace: testNamespace, TaskQueue: &taskqueuepb.TaskQueue{Name: builder.Queue("p")}})
	wantDenied(t, "PollWorkflowTaskQueue", err)
	bad, ctx := raw(t, ts, "slwc1.forged.bad")
	_, err = bad.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: testNamespace})
	wantDenied(t, "a forged credential", err)
}

// otherProject: q's credential cannot touch p's queue or workflows, nor
// do anything a server does.
func otherProject(t *testing.T, ts *Server, server client.Client, qTok, pRun string) {
	c, ctx := raw(t, ts, qTok)
	_, err := c.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: testNamespace})
	if err != nil {
		t.Errorf("an agent's DescribeNamespace: %v", err)
	}
	for _, tq := range []*taskqueuepb.TaskQueue{
		{Name: builder.Queue("p")},
		{Name: "/_sys/" + builder.Queue("p") + "/1"},
		// Matching knows a sticky queue by its name alone.
		{Name: builder.Queue("p"), Kind: enumspb.TASK_QUEUE_KIND_STICKY, NormalName: builder.Queue("q")},
		{Name: "slipway-control", Kind: enumspb.TASK_QUEUE_KIND_STICKY, NormalName: builder.Queue("q")},
		{Name: "host:" + uuid.NewString(), Kind: enumspb.TASK_QUEUE_KIND_STICKY, NormalName: builder.Queue("q")},
	} {
		_, err = c.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{Namespace: testNamespace, TaskQueue: tq})
		wantDenied(t, fmt.Sprintf("q polls %v", tq), err)
	}
	_, err = c.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{
		Namespace: testNamespace, TaskQueue: &taskqueuepb.TaskQueue{Name: builder.Queue("p")}})
	wantDenied(t, "q polls builder-p's activities", err)
	exec := &commonpb.WorkflowExecution{WorkflowId: builder.BuildWorkflowID("dp1"), RunId: pRun}
	_, err = c.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{Namespace: testNamespace, Execution: exec})
	wantDenied(t, "q reads p's history", err)
	_, err = c.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: testNamespace})
	wantDenied(t, "q lists workflows", err)
	_, err = c.StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{Namespace: testNamespace,
		WorkflowId: builder.BuildWorkflowID("dq9"), WorkflowType: &commonpb.WorkflowType{Name: "Build"},
		TaskQueue: &taskqueuepb.TaskQueue{Name: builder.Queue("q")}, RequestId: "r1"})
	wantDenied(t, "q starts a workflow", err)
	_, err = c.TerminateWorkflowExecution(ctx, &workflowservice.TerminateWorkflowExecutionRequest{Namespace: testNamespace, WorkflowExecution: exec})
	wantDenied(t, "q terminates a workflow", err)
	_, err = c.SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{Namespace: testNamespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: builder.DeploymentWorkflowID("dp1")}, SignalName: builder.SignalProgress, RequestId: "r2"})
	wantDenied(t, "q signals p's deployment", err)
	_, err = c.SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{Namespace: testNamespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: builder.DeploymentWorkflowID("dq1")}, SignalName: "stop", RequestId: "r3"})
	wantDenied(t, "q sends its deployment a server's signal", err)
	if _, err := server.DescribeWorkflowExecution(t.Context(), exec.WorkflowId, pRun); err != nil {
		t.Errorf("the server's DescribeWorkflowExecution: %v", err)
	}
}

// agentRunsBuild does, with p's credential, what p's agent does for a
// build workflow: take its workflow task, schedule an activity on its
// queue, take the activity, heartbeat, complete it, and complete the
// workflow. (The SDK's worker cannot run without sticky execution in a
// process that hosts a Temporal server: its cache is the process's.)
func agentRunsBuild(t *testing.T, ts *Server, pTok string) {
	c, ctx := raw(t, ts, pTok)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	queue := &taskqueuepb.TaskQueue{Name: builder.Queue("p"), Kind: enumspb.TASK_QUEUE_KIND_NORMAL}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("p's agent: %s: %v", what, err)
		}
	}
	wt, err := c.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{Namespace: testNamespace, TaskQueue: queue})
	must("poll its workflow task", err)
	_, err = c.RespondWorkflowTaskCompleted(ctx, &workflowservice.RespondWorkflowTaskCompletedRequest{
		Namespace: testNamespace, TaskToken: wt.TaskToken, Commands: []*commandpb.Command{{
			CommandType: enumspb.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
			Attributes: &commandpb.Command_ScheduleActivityTaskCommandAttributes{ScheduleActivityTaskCommandAttributes: &commandpb.ScheduleActivityTaskCommandAttributes{
				ActivityId: "1", ActivityType: &commonpb.ActivityType{Name: builder.ActivityBuild}, TaskQueue: queue,
				StartToCloseTimeout: durationpb.New(time.Minute)}},
		}}})
	must("schedule its activity", err)
	at, err := c.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: testNamespace, TaskQueue: queue})
	must("poll its activity task", err)
	_, err = c.RecordActivityTaskHeartbeat(ctx, &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: testNamespace, TaskToken: at.TaskToken})
	must("heartbeat", err)
	_, err = c.RespondActivityTaskCompleted(ctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: testNamespace, TaskToken: at.TaskToken})
	must("complete its activity", err)
	wt, err = c.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{Namespace: testNamespace, TaskQueue: queue})
	must("poll its next workflow task", err)
	result, err := converter.GetDefaultDataConverter().ToPayloads("built")
	must("result", err)
	_, err = c.RespondWorkflowTaskCompleted(ctx, &workflowservice.RespondWorkflowTaskCompletedRequest{
		Namespace: testNamespace, TaskToken: wt.TaskToken, Commands: []*commandpb.Command{{
			CommandType: enumspb.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
			Attributes: &commandpb.Command_CompleteWorkflowExecutionCommandAttributes{
				CompleteWorkflowExecutionCommandAttributes: &commandpb.CompleteWorkflowExecutionCommandAttributes{Result: result}},
		}}})
	must("complete its workflow", err)
}

// forgedTasks: p's agent takes a real task of its own, then answers it
// with a command that leaves its queue, and answers for q's workflow with
// a task token it made up.
func forgedTasks(t *testing.T, ts *Server, server client.Client, pTok string) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := server.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: builder.BuildWorkflowID("dp2"), TaskQueue: builder.Queue("p")}, "Build", "y"); err != nil {
		t.Fatal(err)
	}
	c, rctx := raw(t, ts, pTok)
	rctx, cancel = context.WithTimeout(rctx, 30*time.Second)
	defer cancel()
	task, err := c.PollWorkflowTaskQueue(rctx, &workflowservice.PollWorkflowTaskQueueRequest{
		Namespace: testNamespace, TaskQueue: &taskqueuepb.TaskQueue{Name: builder.Queue("p")}})
	if err != nil || len(task.GetTaskToken()) == 0 {
		t.Fatalf("p polls its queue: %v", err)
	}
	_, err = c.RespondWorkflowTaskCompleted(rctx, &workflowservice.RespondWorkflowTaskCompletedRequest{
		Namespace: testNamespace, TaskToken: task.TaskToken, Commands: []*commandpb.Command{{
			CommandType: enumspb.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
			Attributes: &commandpb.Command_ScheduleActivityTaskCommandAttributes{ScheduleActivityTaskCommandAttributes: &commandpb.ScheduleActivityTaskCommandAttributes{
				ActivityId: "1", ActivityType: &commonpb.ActivityType{Name: "Finish"},
				TaskQueue: &taskqueuepb.TaskQueue{Name: "slipway-control"}, StartToCloseTimeout: nil}},
		}}})
	wantDenied(t, "p schedules an activity on the server's queue", err)
	for _, wf := range []string{builder.BuildWorkflowID("dq1"), builder.DeploymentWorkflowID("dp2"), "project-p"} {
		tok, err := tokenFor(wf)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.RespondActivityTaskCompleted(rctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: testNamespace, TaskToken: tok})
		wantDenied(t, "p completes an activity of "+wf, err)
		_, err = c.RespondWorkflowTaskCompleted(rctx, &workflowservice.RespondWorkflowTaskCompletedRequest{Namespace: testNamespace, TaskToken: tok})
		wantDenied(t, "p completes a workflow task of "+wf, err)
	}
}

// Temporal's own services (the internal frontend, history, matching,
// worker) take no call from a client without the internode certificate,
// in plain gRPC or in TLS.
func TestInternalServicesNeedTheCertificate(t *testing.T) {
	ts, _ := accessServer(t)
	if len(ts.internal) != 4 {
		t.Fatalf("internal services %v, want 4", ts.internal)
	}
	for _, addr := range ts.internal {
		for name, cred := range map[string]grpc.DialOption{
			"plain": grpc.WithTransportCredentials(insecure.NewCredentials()),
			"tls":   grpc.WithTransportCredentials(grpccreds.NewTLS(&tls.Config{InsecureSkipVerify: true})),
		} {
			conn, err := grpc.NewClient(addr, cred)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_, err = workflowservice.NewWorkflowServiceClient(conn).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
			cancel()
			conn.Close()
			if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
				t.Errorf("%s call to %s: %v, want no connection", name, addr, err)
			}
		}
	}
}

// tokenFor makes up a task token naming workflow id.
func tokenFor(id string) ([]byte, error) {
	return tasktoken.NewSerializer().Serialize(&tokenspb.Task{WorkflowId: id, RunId: "00000000-0000-0000-0000-000000000001", ScheduledEventId: 5})
}
