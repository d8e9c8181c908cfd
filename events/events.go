// Package events announces that a deployment changed (its status, or its
// progress while it builds) on the NATS subject
// slipway.events.<project>.<deployment>, and lets the API hear of it. The
// agent announces progress (Announce), the server announces what it writes
// through a NotifyingStore, and the API's subscriptions Watch.
//
// An announcement only says "re-read this deployment": the store stays the
// record, and delivery is core NATS, at most once, so watchers also poll.
// It must not carry state of its own, nor log lines (package natslog). The
// agent imports it, so it must import nothing of the server's side.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/natslog"
)

// SubjectPrefix starts the subjects on which a deployment's state changes
// are announced: "slipway.events.<project>.<deployment>".
const SubjectPrefix = "slipway.events."

// Subject returns the subject a deployment's state changes are announced
// on.
func Subject(project, deployment string) string {
	return SubjectPrefix + project + "." + deployment
}

// Event is what is announced when a deployment's state changes. Watchers
// re-read the deployment from the store; the status is for logs and tools.
type Event struct {
	Deployment string         `json:"deployment"`
	Status     slipway.Status `json:"status"`
}

// validSubject reports whether project and deployment can name a subject
// (the same rule as for log subjects).
func validSubject(project, deployment string) error {
	if !natslog.ValidToken(project) || !natslog.ValidToken(deployment) {
		return slipway.Errorf(slipway.EINVALID, "invalid deployment %q of project %q", deployment, project)
	}
	return nil
}

// Announce publishes on Subject(project, deployment) that the deployment
// changed (its status, or its progress while it builds), so watchers
// re-read it. Delivery is at most once: watchers also poll.
func Announce(nc *nats.Conn, project, deployment string, status slipway.Status) error {
	if err := validSubject(project, deployment); err != nil {
		return err
	}
	data, _ := json.Marshal(Event{Deployment: deployment, Status: status})
	return nc.Publish(Subject(project, deployment), data)
}

// Watch returns a channel that receives a value whenever the deployment's
// state may have changed (values are coalesced: the channel holds at most
// one), until ctx ends, when it is closed. Changes come from
// announcements, so callers should also re-read the deployment now and
// then.
func Watch(ctx context.Context, nc *nats.Conn, project, deployment string) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	if err := validSubject(project, deployment); err != nil {
		close(out)
		return out, err
	}
	sub, err := nc.Subscribe(Subject(project, deployment), func(*nats.Msg) {
		select {
		case out <- struct{}{}:
		default:
		}
	})
	if err != nil {
		close(out)
		return out, fmt.Errorf("watch deployment %s: %w", deployment, err)
	}
	go func() {
		<-ctx.Done()
		_ = sub.Unsubscribe()
		close(out)
	}()
	return out, nil
}

// NotifyingStore returns store with CreateDeployment, MarkBuilding and
// FinishDeployment announcing on nc each change they make. Every other
// method is store's own. A failed announcement only delays watchers until
// their next poll; log (which may be nil) hears of it at debug level.
func NotifyingStore(store slipway.Store, nc *nats.Conn, log *slog.Logger) slipway.Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &notifyingStore{Store: store, nc: nc, log: log}
}

type notifyingStore struct {
	slipway.Store
	nc  *nats.Conn
	log *slog.Logger
}

func (s *notifyingStore) CreateDeployment(ctx context.Context, d *slipway.Deployment) (*slipway.Deployment, bool, error) {
	got, created, err := s.Store.CreateDeployment(ctx, d)
	if err == nil && created {
		s.announce(got)
	}
	return got, created, err
}

func (s *notifyingStore) MarkBuilding(ctx context.Context, id string, at time.Time) error {
	err := s.Store.MarkBuilding(ctx, id, at)
	if err == nil {
		s.announceID(ctx, id)
	}
	return err
}

func (s *notifyingStore) FinishDeployment(ctx context.Context, id string, r slipway.DeploymentResult, at time.Time) error {
	err := s.Store.FinishDeployment(ctx, id, r, at)
	if err == nil {
		s.announceID(ctx, id)
	}
	return err
}

func (s *notifyingStore) announceID(ctx context.Context, id string) {
	d, err := s.Store.Deployment(ctx, id)
	if err != nil {
		s.log.Debug("announce deployment change: re-read", "deployment", id, "error", err)
		return
	}
	s.announce(d)
}

// announce publishes d's state on its subject.
func (s *notifyingStore) announce(d *slipway.Deployment) {
	if err := Announce(s.nc, d.Project, d.ID, d.Status); err != nil {
		s.log.Debug("announce deployment change", "deployment", d.ID, "error", err)
	}
}
