package github

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v84/github"

	"github.com/slipway-ci/slipway"
)

// Pull request actions that build a preview. Gitea and Forgejo send
// "synchronized" where GitHub sends "synchronize".
var previewActions = map[string]bool{"opened": true, "reopened": true, "synchronize": true, "synchronized": true}

// pullRequest acts on a verified pull_request delivery: opened,
// synchronize(d) and reopened build the head as a preview of each project
// whose branch filter the pull request's base branch passes (a pull
// request into a branch the project does not deploy has no preview
// there); closed (merged or not) removes the preview of every project of
// the repository, whatever its filter. Other actions (labeled, edited,
// ...) are answered 202 and do nothing.
func (h *handler) pullRequest(ctx context.Context, ev *gh.PullRequestEvent, projects []*slipway.Project, id string) (int, Response) {
	action := ev.GetAction()
	n := ev.GetNumber()
	if n == 0 {
		n = ev.GetPullRequest().GetNumber()
	}
	if n <= 0 {
		return reply(http.StatusBadRequest, "pull_request delivery without a pull request number")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deployTimeout)
	defer cancel()
	switch {
	case action == "closed":
		return h.closePreviews(ctx, projects, n)
	case previewActions[action]:
		return h.openPreviews(ctx, ev, projects, n, id)
	}
	return reply(http.StatusAccepted, "pull request #%d: action %q ignored: previews follow opened, synchronize, reopened and closed", n, action)
}

// openPreviews asks for the preview of pull request n's head in each of
// projects whose filter its base branch passes.
func (h *handler) openPreviews(ctx context.Context, ev *gh.PullRequestEvent, projects []*slipway.Project, n int, id string) (int, Response) {
	head := ev.GetPullRequest().GetHead()
	sha := strings.ToLower(head.GetSHA())
	if !slipway.ValidCommit(sha) {
		return reply(http.StatusBadRequest, "invalid commit %q in the pull request's head.sha: want a full 40-hex-digit SHA", head.GetSHA())
	}
	base := ev.GetPullRequest().GetBase().GetRef()
	var (
		resp     Response
		notes    []string
		firstErr error
		created  int
	)
	for _, p := range projects {
		prefix := projectPrefix(p, projects)
		filter := strings.TrimPrefix(p.Branch, "refs/heads/")
		if filter == "" {
			filter = ev.GetRepo().GetDefaultBranch()
		}
		if !branchMatches(filter, base) {
			notes = append(notes, fmt.Sprintf("%spull request #%d into %s: no preview, the project deploys %s", prefix, n, base, filter))
			continue
		}
		req := slipway.PreviewRequest{Project: p.Name, Number: n, HeadSHA: sha, HeadBranch: head.GetRef(), DeliveryID: id}
		dep, outcome, err := h.previews.OpenPreview(ctx, req)
		if err != nil {
			if slipway.HTTPStatus(err) == http.StatusInternalServerError {
				h.log.Error("open preview", "project", p.Name, "pull_request", n, "delivery", id, "commit", sha, "err", err)
			}
			firstErr = cmp.Or(firstErr, err)
			notes = append(notes, prefix+userMessage(err))
			continue
		}
		resp.Deployments = append(resp.Deployments, dep.ID)
		h.log.Info("webhook pull request", "project", p.Name, "pull_request", n, "deployment", dep.ID, "delivery", id, "commit", sha, "outcome", outcome)
		if outcome.Created() {
			created++
			notes = append(notes, fmt.Sprintf("%spreview of pull request #%d at %s: deployment %s queued", prefix, n, short(sha), dep.ID))
		} else {
			notes = append(notes, fmt.Sprintf("%spreview of pull request #%d at %s: deployment %s already answers it (%s)", prefix, n, short(sha), dep.ID, outcome))
		}
	}
	if len(resp.Deployments) > 0 {
		resp.Deployment = resp.Deployments[0]
	}
	resp.Message = strings.Join(notes, "; ")
	switch {
	case firstErr != nil:
		return slipway.HTTPStatus(firstErr), resp
	case created == 0 && len(resp.Deployments) > 0:
		return http.StatusOK, resp
	}
	return http.StatusAccepted, resp
}

// closePreviews removes pull request n's preview from each of projects.
func (h *handler) closePreviews(ctx context.Context, projects []*slipway.Project, n int) (int, Response) {
	var notes []string
	var firstErr error
	for _, p := range projects {
		prefix := projectPrefix(p, projects)
		had, err := h.previews.ClosePreview(ctx, p.Name, n)
		switch {
		case err != nil:
			h.log.Error("close preview", "project", p.Name, "pull_request", n, "err", err)
			firstErr = cmp.Or(firstErr, err)
			notes = append(notes, prefix+userMessage(err))
		case had:
			h.log.Info("webhook pull request closed", "project", p.Name, "pull_request", n)
			notes = append(notes, fmt.Sprintf("%spull request #%d closed: its preview was removed", prefix, n))
		default:
			notes = append(notes, fmt.Sprintf("%spull request #%d closed: it had no preview", prefix, n))
		}
	}
	resp := Response{Message: strings.Join(notes, "; ")}
	if firstErr != nil {
		return slipway.HTTPStatus(firstErr), resp
	}
	return http.StatusOK, resp
}

func projectPrefix(p *slipway.Project, projects []*slipway.Project) string {
	if len(projects) > 1 {
		return "project " + p.Name + ": "
	}
	return ""
}
