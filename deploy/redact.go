package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/redact"
)

// projectRedactor is the one place the server decides what of a project
// is secret in the text users see (deployment errors, messages quoting
// git): the credentials in its repository URL and, when secrets is not
// nil, the values of its build secrets.
func projectRedactor(ctx context.Context, p *slipway.Project, secrets slipway.SecretStore) (*redact.Redactor, error) {
	list := redact.RepoURLSecrets(p.Repo)
	if secrets != nil {
		vals, err := secrets.SecretValues(ctx, p.Name)
		if err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", p.Name, err)
		}
		for _, v := range vals {
			list = append(list, string(v.Value))
		}
	}
	return redact.New(list...), nil
}

// redactError returns err with what r masks masked in its message. An
// application error keeps its code; err itself is returned when there is
// nothing to mask.
func redactError(r *redact.Redactor, err error) error {
	if e := (*slipway.Error)(nil); errors.As(err, &e) && r.Redact(e.Message) != e.Message {
		return &slipway.Error{Code: e.Code, Message: r.Redact(e.Message)}
	} else if msg := r.Redact(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// DeploymentError returns d's recorded error with its project's
// repository credentials masked. Errors are redacted before they are
// stored (ControlActivities.FinishDeployment); this covers those stored
// before that.
func (s *Projects) DeploymentError(ctx context.Context, d *slipway.Deployment) (string, error) {
	if d.Error == "" {
		return "", nil
	}
	p, err := s.cfg.Store.Project(ctx, d.Project)
	if err != nil {
		return "", fmt.Errorf("project of deployment %s: %w", d.ID, err)
	}
	r, err := projectRedactor(ctx, p, nil)
	if err != nil {
		return "", err
	}
	return r.Redact(d.Error), nil
}
