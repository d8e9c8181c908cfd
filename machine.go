package slipway

import "context"

// MachineState is what the control plane knows of a project's builder.
type MachineState string

// Machine states.
const (
	MachineAbsent   MachineState = "absent"   // never created, or destroyed
	MachineAsleep   MachineState = "asleep"   // volume only, no agent running
	MachineStarting MachineState = "starting" // agent launched, not yet polling
	MachineAwake    MachineState = "awake"    // agent running
	MachineFailed   MachineState = "failed"   // could not be started
)

// MachineProvider manages one builder machine per project: an agent plus a
// persistent volume that is the project's build cache.
//
// Call order: Ensure creates the machine (its volume) on first use; Start
// wakes it (starting the agent if it is not running; a Start while it is
// awake reuses it); Stop puts it to sleep (the agent also exits by itself
// when idle); Destroy removes the machine and its volume. Status may be
// called at any time. All methods are safe for concurrent use, also for the
// same project, and idempotent. An error means the operation did not take
// effect and may be retried; errors that a retry cannot fix are
// *Error{Code: EINVALID}.
type MachineProvider interface {
	// Ensure creates the project's machine and volume if they do not exist.
	Ensure(ctx context.Context, project string) error
	// Start wakes the machine; it returns once the agent process runs.
	Start(ctx context.Context, project string) error
	// Stop stops the agent, keeping the volume.
	Stop(ctx context.Context, project string) error
	// Status reports the machine's state.
	Status(ctx context.Context, project string) (MachineState, error)
	// Destroy stops the machine and deletes its volume.
	Destroy(ctx context.Context, project string) error
}
