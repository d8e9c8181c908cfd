package slipway

import (
	"context"
	"time"
)

// MachineState is what the control plane knows of a project's builder.
//
// A machine moves through the states like this. Start on a machine that is
// asleep, failed or new launches its agent: starting. Once the agent polls
// its queue the machine is awake. A Start while it is awake or building (a
// build reusing it) makes it building. When the agent exits 0 (idle, or
// told to stop) the machine is asleep; when the agent exits non-zero, is
// killed by a signal or cannot be started at all, it is failed, with the
// reason in Machine.Error. Destroy makes it absent.
//
// An agent can die while no one watches it (during a server restart, say).
// A machine recorded as starting, awake or building whose agent is gone is
// therefore corrected the next time its status is checked: asleep if the
// agent exited cleanly, failed otherwise.
type MachineState string

// Machine states.
const (
	// MachineAbsent: never created, or destroyed. Machine lookups of a
	// project that never had a machine fail with ENOTFOUND instead.
	MachineAbsent MachineState = "absent"
	// MachineAsleep: the volume only, no agent running. It costs nothing
	// but disk.
	MachineAsleep MachineState = "asleep"
	// MachineStarting: the agent was launched and is not yet polling its
	// queue.
	MachineStarting MachineState = "starting"
	// MachineAwake: the agent polls its queue.
	MachineAwake MachineState = "awake"
	// MachineBuilding: a build asked for the machine while its agent was
	// polling; the agent runs it (or is about to), and goes back to
	// asleep when it exits after its work.
	MachineBuilding MachineState = "building"
	// MachineFailed: the agent could not be started, or exited with an
	// error or a signal; Machine.Error says why.
	MachineFailed MachineState = "failed"
)

// Valid reports whether s is one of the known states.
func (s MachineState) Valid() bool {
	switch s {
	case MachineAbsent, MachineAsleep, MachineStarting, MachineAwake, MachineBuilding, MachineFailed:
		return true
	}
	return false
}

// Running reports whether s means an agent process should be alive.
func (s MachineState) Running() bool {
	return s == MachineStarting || s == MachineAwake || s == MachineBuilding
}

// Machine is the stored record of a project's builder machine: its last
// known state and how its last wake went. The machine provider writes it;
// the API and `slipway machines` read it.
type Machine struct {
	// Project is the project the machine builds for (one machine each).
	Project string `json:"project"`
	// Provider names the machine provider that runs it, e.g. "process".
	Provider string `json:"provider"`
	// State is the machine's last recorded state.
	State MachineState `json:"state"`
	// Isolation is whom the agent runs as: "rootless" (its own
	// unprivileged user, User, with rootless podman) or "root"; "" in
	// records written before isolation modes existed.
	Isolation string `json:"isolation,omitempty"`
	// User is the builder user the agent runs as in rootless mode.
	User string `json:"user,omitempty"`
	// PID is the agent's process id while it runs (process provider), 0
	// otherwise.
	PID int `json:"pid,omitempty"`
	// VolumeDir is where the machine's volume lives.
	VolumeDir string `json:"volumeDir"`
	// VolumeBytes is the volume's disk use when last measured (when the
	// machine last went to sleep); 0 when unknown.
	VolumeBytes int64 `json:"volumeBytes,omitempty"`
	// LastWokeAt is when the agent was last launched.
	LastWokeAt *time.Time `json:"lastWokeAt,omitempty"`
	// LastWakeMs is how long the last wake took, from launching the agent
	// to the agent polling its queue; 0 when it was not measured.
	LastWakeMs int64 `json:"lastWakeMs,omitempty"`
	// LastSleptAt is when the agent last exited.
	LastSleptAt *time.Time `json:"lastSleptAt,omitempty"`
	// Error says why the machine failed (State failed), else "".
	Error string `json:"error,omitempty"`
	// UpdatedAt is when the record was last written.
	UpdatedAt time.Time `json:"updatedAt"`
}

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
	// Start wakes the machine for a build; it returns once the agent
	// process runs (not necessarily polling yet).
	Start(ctx context.Context, project string) error
	// Stop stops the agent, keeping the volume.
	Stop(ctx context.Context, project string) error
	// Status reports the machine's state, checking that an agent recorded
	// as running is still alive.
	Status(ctx context.Context, project string) (MachineState, error)
	// Destroy stops the machine and deletes its volume.
	Destroy(ctx context.Context, project string) error
}
