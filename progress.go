package slipway

import "context"

// The phases of a deployment, in order, as Progress reports them. A
// deployment that has ended is in PhaseDone whatever its status.
const (
	PhaseQueue = "queue"
	PhaseWake  = "wake"
	PhaseFetch = "fetch"
	PhaseBuild = "build"
	PhasePush  = "push"
	// PhaseRelease: the image starts beside the app's current release, is
	// health-checked and takes its traffic.
	PhaseRelease = "release"
	PhaseDone    = "done"
)

// Progress is where a deployment is now: its phase and, while it builds,
// the Dockerfile step podman is on. While a deployment runs, its workflow
// holds it (see deploy.QueryState); once it ended it follows from the
// record (ProgressOf).
type Progress struct {
	// Phase is one of queue, wake, fetch, build, push, release, done.
	Phase string `json:"phase"`
	// Step and StepsTotal are the current step's "STEP n/m" as podman
	// prints it: within its stage, for a multi-stage build. Once the
	// deployment ended they count the steps of the whole build. Zero
	// before the first step.
	Step       int `json:"step"`
	StepsTotal int `json:"stepsTotal"`
	// Stage and Stages number the current stage ("[2/3]") of a
	// multi-stage build; zero for a single-stage one.
	Stage  int `json:"stage,omitempty"`
	Stages int `json:"stages,omitempty"`
	// Instruction is the current step's instruction, e.g. "RUN npm ci".
	Instruction string `json:"instruction,omitempty"`
	// CachedSteps is how many steps so far the layer cache served.
	CachedSteps int `json:"cachedSteps"`
}

// ProgressOf is a deployment's progress as far as its record tells: the
// phase its status implies and, once it ended, the steps it recorded. A
// running deployment's workflow knows more (see ProgressReader).
func ProgressOf(d *Deployment) *Progress {
	switch {
	case d.Status.Terminal():
		p := &Progress{Phase: PhaseDone, Step: len(d.Steps), StepsTotal: len(d.Steps)}
		for _, s := range d.Steps {
			if s.Cached {
				p.CachedSteps++
			}
		}
		return p
	case d.Status == StatusBuilding:
		return &Progress{Phase: PhaseBuild}
	}
	return &Progress{Phase: PhaseQueue}
}

// ProgressReader tells a running deployment's progress. The Deployer
// service is one: it asks the deployment's workflow.
type ProgressReader interface {
	// Progress returns d's progress now: from its workflow while it
	// runs, from the record (ProgressOf) once it ended.
	Progress(ctx context.Context, d *Deployment) (*Progress, error)
}
