package natslog_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/slipway-ci/slipway"
)

// memStore is an in-memory slipway.Store that only keeps log lines; the
// other methods fail. It counts writes so tests can see redeliveries, and
// can be told to fail.
type memStore struct {
	mu        sync.Mutex
	lines     map[string]map[int64]slipway.LogLine
	writes    int // lines handed to AppendLogLines and stored or ignored
	dupWrites int // of those, lines it already had
	failNext  int // fail this many AppendLogLines calls
	refuse    map[string]bool
}

var errUnused = errors.New("memstore: not implemented")

func newMemStore() *memStore {
	return &memStore{lines: make(map[string]map[int64]slipway.LogLine), refuse: make(map[string]bool)}
}

func (s *memStore) AppendLogLines(ctx context.Context, lines []slipway.LogLine) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return errors.New("memstore: disk on fire")
	}
	for _, l := range lines {
		if s.refuse[l.Deployment] {
			return slipway.Errorf(slipway.ENOTFOUND, "deployment %s not found", l.Deployment)
		}
	}
	for _, l := range lines {
		s.writes++
		m := s.lines[l.Deployment]
		if m == nil {
			m = make(map[int64]slipway.LogLine)
			s.lines[l.Deployment] = m
		}
		if _, ok := m[l.N]; ok {
			s.dupWrites++
			continue
		}
		m[l.N] = l
	}
	return nil
}

func (s *memStore) LogLines(ctx context.Context, deployment string, from int64, limit int) ([]slipway.LogLine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slipway.LogLine
	for n, l := range s.lines[deployment] {
		if n >= from {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b slipway.LogLine) int { return int(a.N - b.N) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) counts() (writes, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.dupWrites
}

func (s *memStore) CreateProject(context.Context, *slipway.Project) error { return errUnused }
func (s *memStore) Project(context.Context, string) (*slipway.Project, error) {
	return nil, errUnused
}
func (s *memStore) Projects(context.Context) ([]*slipway.Project, error) { return nil, errUnused }
func (s *memStore) SetBuildArgs(context.Context, string, []slipway.BuildArg, []string) (*slipway.Project, error) {
	return nil, errUnused
}
func (s *memStore) ProjectsByRepo(context.Context, []string) ([]*slipway.Project, error) {
	return nil, errUnused
}
func (s *memStore) CreateDeployment(context.Context, *slipway.Deployment) (*slipway.Deployment, bool, error) {
	return nil, false, errUnused
}
func (s *memStore) Deployment(context.Context, string) (*slipway.Deployment, error) {
	return nil, errUnused
}
func (s *memStore) Deployments(context.Context, string, int) ([]*slipway.Deployment, error) {
	return nil, errUnused
}
func (s *memStore) DeleteProject(context.Context, string) error { return errUnused }
func (s *memStore) DeploymentOfCommit(context.Context, string, string, string) (*slipway.Deployment, error) {
	return nil, errUnused
}
func (s *memStore) UnfinishedDeployments(context.Context) ([]*slipway.Deployment, error) {
	return nil, errUnused
}
func (s *memStore) MarkBuilding(context.Context, string, time.Time) error { return errUnused }
func (s *memStore) FinishDeployment(context.Context, string, slipway.DeploymentResult, time.Time) error {
	return errUnused
}
func (s *memStore) UpsertMachine(context.Context, *slipway.Machine) error { return errUnused }
func (s *memStore) Machine(context.Context, string) (*slipway.Machine, error) {
	return nil, errUnused
}
func (s *memStore) Machines(context.Context) ([]*slipway.Machine, error) { return nil, errUnused }
func (s *memStore) Close() error                                         { return nil }

var _ slipway.Store = (*memStore)(nil)
