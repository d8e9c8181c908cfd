package main

import (
	"context"

	"github.com/slipway-ci/slipway"
)

// Rollback completes the fake Deployer; these tests do not roll back.
func (f *fakeDeployer) Rollback(ctx context.Context, project, to string) (*slipway.Deployment, error) {
	return nil, slipway.Errorf(slipway.EINVALID, "rollback is not supported by this fake")
}

// Cancel completes the fake Deployer; these tests do not cancel.
func (f *fakeDeployer) Cancel(ctx context.Context, id string) (*slipway.Deployment, error) {
	return nil, slipway.Errorf(slipway.EINVALID, "cancel is not supported by this fake")
}
