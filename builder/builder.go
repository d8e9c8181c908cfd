// Package builder is the contract between Slipway's control plane and its
// builder machines: everything the server side (package deploy, the server,
// the machine providers) and the agent on a machine (package agent) must
// agree on, and nothing else.
//
//   - The BuildWorkflow the agent hosts on its project's task queue
//     (Queue), its input and results, the names of its activities, and
//     the signals the agent sends to the deployment's workflow
//     (DeploymentWorkflowID).
//   - How a build fails: ErrBuildFailed and ErrPushFailed with
//     FailureDetails.
//   - The agent's whole configuration, AgentConfig: one versioned struct
//     that a machine provider writes as one file on the volume
//     (Layout.Config) and the agent reads.
//   - The layout of a machine's volume, Layout.
//
// Names Temporal records (the workflow's, activities', signals' and task
// queues' names, and the JSON field names of inputs and results) are in the
// histories of deployments in flight: renaming one breaks their replay
// after an upgrade.
//
// It must import neither side: no server package (deploy, server, graphql,
// sqlite, github, registry, temporalserver) and not the agent or its
// drivers (buildah, gitmirror, natslog). TestImportsNeitherSide in
// internal/archtest checks.
package builder

import "time"

// Queue is the task queue only the project's agent polls: the project's
// BuildWorkflow and its activities run there.
func Queue(project string) string { return "builder-" + project }

// NATSAgentInboxes is the first token of every agent's inboxes, so that
// an external NATS can give the agents' one user "subscribe
// _INBOX_AGENT.>" and nothing of the server's inboxes (_INBOX.>).
const NATSAgentInboxes = "_INBOX_AGENT"

// NATSInboxPrefix is the inbox prefix of the project's agent's NATS
// connections (nats.CustomInboxPrefix): the replies it gets (build
// secrets, log acks) arrive under it, and the embedded NATS lets an agent
// subscribe nowhere else.
func NATSInboxPrefix(project string) string { return NATSAgentInboxes + "." + project }

// DeploymentWorkflowID is the id of a deployment's DeploymentWorkflow,
// which the agent signals (SignalProgress, SignalLogEnd).
func DeploymentWorkflowID(deployment string) string { return "deploy-" + deployment }

// BuildWorkflowName is the name BuildWorkflow is registered under.
const BuildWorkflowName = "BuildWorkflow"

// The build activities' names: the agent runs them on Queue(project).
const (
	ActivityFetch = "Fetch"
	ActivityBuild = "Build"
	ActivityPush  = "Push"
)

// The signals the agent sends to the deployment's DeploymentWorkflow
// (DeploymentWorkflowID).
const (
	// SignalProgress carries a slipway.Progress: the agent's phase and
	// build step, the whole state each time (not a delta), so signals
	// coalesced or lost in between do no harm.
	SignalProgress = "progress"
	// SignalLogEnd carries the number of the agent's last log line (an
	// int64) once an activity's log publisher has closed: every line up to
	// it is in the log stream or in the volume's spool.
	SignalLogEnd = "log-end"
)

// Application error types of the build activities.
const (
	// ErrBuildFailed is a build that cannot succeed by retrying (bad
	// Dockerfile, failing RUN, missing commit, refused secrets). Its
	// details are FailureDetails.
	ErrBuildFailed = "BuildFailed"
	// ErrPushFailed is a push or labelling that failed and is retried
	// (registry away); its details are FailureDetails.
	ErrPushFailed = "PushFailed"
)

// FailureDetails travel with an ErrBuildFailed or ErrPushFailed error.
type FailureDetails struct {
	// Step is the step that failed, e.g. "STEP 2/3: RUN make" or "push".
	Step string
	// Tail are the failing step's last output lines.
	Tail []string
}

// Heartbeats of long activities: the agent's build activities (and the
// server's slow ones) heartbeat every HeartbeatInterval; a worker that dies
// is noticed within HeartbeatTimeout, and so is a cancellation (the SDK
// sends heartbeats at most every 0.8 × HeartbeatTimeout), so a superseded
// build's buildah is killed within seconds.
const (
	HeartbeatInterval = time.Second
	HeartbeatTimeout  = 5 * time.Second
)

// BuildWorkflowID is the id of a deployment's BuildWorkflow, the child of
// its DeploymentWorkflow. The embedded Temporal lets only the deployment's
// project's agent complete its tasks.
func BuildWorkflowID(deployment string) string { return "build-" + deployment }
