package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	tokenspb "go.temporal.io/server/api/token/v1"
	"go.temporal.io/server/common/tasktoken"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The attacks on the Temporal frontend (embedded, on loopback): a local
// account with no credential, or a build that escaped its container with
// its project's credential (TOKEN, "-" for none), tries to read other
// workflows' histories, take another project's tasks, signal and end
// workflows. Each is blocked when the frontend answers PermissionDenied.
//
//	temporal-list ADDR NAMESPACE TOKEN
//	temporal-history ADDR NAMESPACE TOKEN WORKFLOW-ID
//	temporal-poll ADDR NAMESPACE TOKEN QUEUE
//	temporal-signal ADDR NAMESPACE TOKEN WORKFLOW-ID SIGNAL
//	temporal-terminate ADDR NAMESPACE TOKEN WORKFLOW-ID
//	temporal-poll-sticky ADDR NAMESPACE TOKEN QUEUE NORMAL-QUEUE
//	temporal-complete ADDR NAMESPACE TOKEN WORKFLOW-ID (a made-up task token)
func init() {
	attacks["temporal-list"] = temporalAttack(0, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		return c.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns})
	})
	attacks["temporal-history"] = temporalAttack(1, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		return c.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
			Namespace: ns, Execution: &commonpb.WorkflowExecution{WorkflowId: a[0]}})
	})
	attacks["temporal-poll"] = temporalAttack(1, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		// Blocked only if both polls are denied.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		wf, err := c.PollWorkflowTaskQueue(wctx, &workflowservice.PollWorkflowTaskQueueRequest{
			Namespace: ns, TaskQueue: &taskqueuepb.TaskQueue{Name: a[0]}, Identity: "attacker"})
		if status.Code(err) != codes.PermissionDenied {
			return wf, fmt.Errorf("the workflow task poll got past the checks: %v", err)
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.PollActivityTaskQueue(actx, &workflowservice.PollActivityTaskQueueRequest{
			Namespace: ns, TaskQueue: &taskqueuepb.TaskQueue{Name: a[0]}, Identity: "attacker"})
	})
	attacks["temporal-poll-sticky"] = temporalAttack(2, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		// Matching knows a sticky queue by its name alone: a "sticky"
		// poll of another queue's name would take its tasks.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{Namespace: ns, Identity: "attacker",
			TaskQueue: &taskqueuepb.TaskQueue{Name: a[0], Kind: enumspb.TASK_QUEUE_KIND_STICKY, NormalName: a[1]}})
	})
	attacks["temporal-complete"] = temporalAttack(1, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		tok, err := tasktoken.NewSerializer().Serialize(&tokenspb.Task{WorkflowId: a[0], RunId: "00000000-0000-0000-0000-000000000001", ScheduledEventId: 5, ActivityId: "1"})
		if err != nil {
			return nil, err
		}
		return c.RespondActivityTaskCompleted(ctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: ns, TaskToken: tok, Identity: "attacker"})
	})
	attacks["temporal-signal"] = temporalAttack(2, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		return c.SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{Namespace: ns,
			WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: a[0]}, SignalName: a[1], Identity: "attacker"})
	})
	attacks["temporal-terminate"] = temporalAttack(1, func(ctx context.Context, c workflowservice.WorkflowServiceClient, ns string, a []string) (proto.Message, error) {
		return c.TerminateWorkflowExecution(ctx, &workflowservice.TerminateWorkflowExecutionRequest{Namespace: ns,
			WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: a[0]}, Reason: "attacker", Identity: "attacker"})
	})
}

// temporalAttack makes an attack of args ADDR NAMESPACE TOKEN and n more:
// call makes one call to the frontend. Only PermissionDenied is blocked;
// any other answer (NotFound included) means the call got past the
// frontend's checks, and what it returned is Seen.
func temporalAttack(n int, call func(context.Context, workflowservice.WorkflowServiceClient, string, []string) (proto.Message, error)) func([]string) Result {
	return func(args []string) Result {
		if len(args) != 3+n {
			return open("usage: ADDR NAMESPACE TOKEN and %d more arguments, got %q", n, args)
		}
		conn, err := grpc.NewClient(args[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return open("dial %s: %v", args[0], err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if args[2] != "-" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+args[2])
		}
		resp, err := call(ctx, workflowservice.NewWorkflowServiceClient(conn), args[1], args[3:])
		var seen []string
		if resp != nil {
			// The wire form shows a payload's bytes as they are; JSON
			// would show them in base64.
			if b, merr := proto.Marshal(resp); merr == nil {
				seen = append(seen, string(b))
			}
			if b, merr := protojson.Marshal(resp); merr == nil {
				seen = append(seen, string(b))
			}
		}
		switch {
		case status.Code(err) == codes.PermissionDenied:
			return Result{Blocked: true, Detail: "denied: " + status.Convert(err).Message(), Seen: seen}
		case err == nil:
			return Result{Detail: "accepted", Seen: seen}
		case errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
			return Result{Detail: "accepted (the call waited for work): " + err.Error(), Seen: seen}
		}
		return Result{Detail: "past the checks: " + err.Error(), Seen: seen}
	}
}
