package slipway

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// PreviewState is the state of a pull request's preview.
type PreviewState string

// Preview states.
const (
	// PreviewOpen: the pull request is open; its head is built and served.
	PreviewOpen PreviewState = "open"
	// PreviewClosed: the pull request was closed (merged or not), or the
	// preview sat idle past the server's preview TTL; its app is being
	// removed. A closed record lasts only until its containers are gone
	// (at the latest at the next server start).
	PreviewClosed PreviewState = "closed"
)

// Preview is a pull request's preview: its head built as a deployment of
// the project (Deployment.Preview is the number) and served as an app of
// its own at pr-<Number>.<project>.<apps-domain>.
type Preview struct {
	Project string `json:"project"`
	// Number is the pull request's number.
	Number int `json:"number"`
	// HeadRef is the ref the head is fetched from, refs/pull/<N>/head;
	// HeadBranch the pull request's branch (in the fork for a pull request
	// from a fork), for display.
	HeadRef    string `json:"headRef"`
	HeadBranch string `json:"headBranch,omitempty"`
	// HeadSHA is the commit the preview was last asked to build.
	HeadSHA string       `json:"headSha"`
	State   PreviewState `json:"state"`
	// Deployment is the id of the deployment made for HeadSHA (it may
	// still be building: the preview serves its latest succeeded
	// deployment meanwhile).
	Deployment string    `json:"deployment"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	// LastRequestAt is when the preview last served a request, as last
	// recorded (coarsely: at most about once a minute), or nil when it
	// never did. The preview TTL counts from it, else from UpdatedAt.
	LastRequestAt *time.Time `json:"lastRequestAt,omitempty"`
}

// PreviewRef is the ref a forge keeps a pull request's head at:
// refs/pull/<n>/head (GitHub, Gitea, Forgejo and Gogs alike).
func PreviewRef(n int) string { return "refs/pull/" + strconv.Itoa(n) + "/head" }

// PreviewOfRef returns the pull request number of a ref PreviewRef made,
// or 0.
func PreviewOfRef(ref string) int {
	rest, ok := strings.CutPrefix(ref, "refs/pull/")
	if !ok {
		return 0
	}
	digits, ok := strings.CutSuffix(rest, "/head")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n <= 0 || strconv.Itoa(n) != digits {
		return 0
	}
	return n
}

// PreviewStore keeps the previews' records.
type PreviewStore interface {
	// PutPreview records p (state open): a new preview, or a new head of
	// an existing one (its CreatedAt and LastRequestAt are kept). A
	// closed record is reopened. An unknown project is ENOTFOUND.
	PutPreview(ctx context.Context, p *Preview) (*Preview, error)
	// Preview returns one preview, or ENOTFOUND.
	Preview(ctx context.Context, project string, number int) (*Preview, error)
	// Previews lists a project's previews by number; an empty project
	// lists every project's.
	Previews(ctx context.Context, project string) ([]*Preview, error)
	// SetPreviewState changes a preview's state; ENOTFOUND if it has no
	// record.
	SetPreviewState(ctx context.Context, project string, number int, state PreviewState) error
	// TouchPreview records that the preview served a request at at (a
	// later time only); no record is no error.
	TouchPreview(ctx context.Context, project string, number int, at time.Time) error
	// DeletePreview removes a preview's record; no record is no error.
	DeletePreview(ctx context.Context, project string, number int) error
}

// PreviewRequest asks for (a new head of) a pull request's preview.
type PreviewRequest struct {
	Project string
	// Number is the pull request's number.
	Number int
	// HeadSHA is the full SHA of the pull request's head commit.
	HeadSHA string
	// HeadBranch is the pull request's branch name, for display.
	HeadBranch string
	// DeliveryID is the forge's delivery id (see DeployRequest).
	DeliveryID string
}

// Previewer opens and closes pull requests' previews.
type Previewer interface {
	// OpenPreview builds req's head as a preview deployment (through the
	// Deployer, with its outcome) and records the preview open.
	OpenPreview(ctx context.Context, req PreviewRequest) (*Deployment, DeployOutcome, error)
	// ClosePreview removes a pull request's preview: its builds are
	// cancelled, its app's containers and its record removed. It reports
	// whether there was a preview; none is no error.
	ClosePreview(ctx context.Context, project string, number int) (bool, error)
}
