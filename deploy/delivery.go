package deploy

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// recentForReplay is how many of a project's latest deployments a webhook
// delivery's commit is checked against.
const recentForReplay = 200

// Earlier is the one place a request that needs no new deployment is
// recognised: it returns the deployment that already answers req (its Ref
// and Commit resolved) and why, or nil when req asks for something new.
//
//   - A stale delivery (req.Stale) of a commit deployed from its branch,
//     by any trigger, is answered by that deployment (DeployStale).
//   - A webhook delivery of a commit a webhook already deployed from its
//     branch is answered by that deployment: DeployRedelivered when it
//     was made for the same delivery id, else DeployReplayed (a delivery
//     replayed under another id, or an old one). For a pull request's
//     preview (req.Preview) a build that was cancelled or superseded does
//     not answer a new delivery: its head builds again.
//
// A delivery id seen before is also caught atomically by the store when
// the deployment is recorded (slipway.Store.CreateDeployment, see
// CreatedOutcome), so two concurrent redeliveries make one deployment.
// Every Deployer (the Service, the tests' sqlitetest.Deployer) asks here.
func Earlier(ctx context.Context, store slipway.Store, req slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	if req.Stale {
		d, err := store.DeploymentOfCommit(ctx, req.Project, branchOf(req.Ref), req.Commit)
		switch {
		case err == nil:
			return d, slipway.DeployStale, nil
		case slipway.ErrorCode(err) != slipway.ENOTFOUND:
			return nil, "", fmt.Errorf("look up earlier deployments of %s: %w", req.Project, err)
		}
	}
	if req.Trigger != slipway.TriggerWebhook {
		return nil, "", nil
	}
	recent, err := store.Deployments(ctx, req.Project, recentForReplay)
	if err != nil {
		return nil, "", err
	}
	for _, d := range recent {
		if d.Commit == req.Commit && d.Trigger == slipway.TriggerWebhook && branchOf(d.Ref) == branchOf(req.Ref) {
			if req.DeliveryID != "" && (d.DeliveryID == DeliveryKey(req) || d.DeliveryID == req.DeliveryID) {
				return d, slipway.DeployRedelivered, nil
			}
			if req.Preview != 0 && (d.Status == slipway.StatusCancelled || d.Status == slipway.StatusSuperseded) {
				// A pull request reopened, or pushed back to, after that
				// build stopped: a preview never becomes the release, so
				// building its head again rolls nothing back.
				continue
			}
			return d, slipway.DeployReplayed, nil
		}
	}
	return nil, "", nil
}

// DeliveryKey is the delivery id a deployment of req is recorded under:
// the forge's id and the project's name, because one delivery deploys
// every project registered for its repository and the store deduplicates
// by delivery id alone. It is empty for a request without a delivery id.
// (Deployments recorded before it for a single project have the forge's
// id alone; Earlier recognises both.)
func DeliveryKey(req slipway.DeployRequest) string {
	if req.DeliveryID == "" {
		return ""
	}
	return req.DeliveryID + "/" + req.Project
}

// CreatedOutcome is the outcome of recording a deployment with
// slipway.Store.CreateDeployment: DeployCreated, or DeployRedelivered when
// the store already had a deployment for the delivery id.
func CreatedOutcome(created bool) slipway.DeployOutcome {
	if created {
		return slipway.DeployCreated
	}
	return slipway.DeployRedelivered
}
