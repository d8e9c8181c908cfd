package graphql_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway"
)

// memStore is an in-memory slipway.Store for the API's tests.
type memStore struct {
	mu          sync.Mutex
	projects    map[string]*slipway.Project
	deployments []*slipway.Deployment // in creation order
	logs        map[string][]slipway.LogLine
	machines    map[string]*slipway.Machine
}

var _ slipway.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{projects: map[string]*slipway.Project{}, logs: map[string][]slipway.LogLine{}, machines: map[string]*slipway.Machine{}}
}

func (s *memStore) CreateProject(_ context.Context, p *slipway.Project) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[p.Name]; ok {
		return slipway.Errorf(slipway.ECONFLICT, "project %q already exists", p.Name)
	}
	c := *p
	s.projects[p.Name] = &c
	return nil
}

func (s *memStore) Project(_ context.Context, name string) (*slipway.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[name]
	if !ok {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", name)
	}
	c := *p
	return &c, nil
}

func (s *memStore) SetBuildArgs(_ context.Context, project string, set []slipway.BuildArg, unset []string) (*slipway.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[project]
	if !ok {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	}
	args, err := slipway.ChangeBuildArgs(project, p.BuildArgs, set, unset)
	if err != nil {
		return nil, err
	}
	c := *p
	c.BuildArgs = args
	s.projects[project] = &c
	r := c
	return &r, nil
}

func (s *memStore) Projects(context.Context) ([]*slipway.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*slipway.Project
	for _, p := range s.projects {
		c := *p
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *memStore) ProjectsByRepo(_ context.Context, urls []string) ([]*slipway.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*slipway.Project
	for _, p := range s.projects {
		for _, u := range urls {
			if slipway.NormalizeRepoURL(u) == slipway.NormalizeRepoURL(p.Repo) {
				c := *p
				out = append(out, &c)
				break
			}
		}
	}
	return out, nil
}

func (s *memStore) CreateDeployment(_ context.Context, d *slipway.Deployment) (*slipway.Deployment, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.DeliveryID != "" {
		for _, e := range s.deployments {
			if e.DeliveryID == d.DeliveryID {
				c := *e
				return &c, false, nil
			}
		}
	}
	c := *d
	s.deployments = append(s.deployments, &c)
	return d, true, nil
}

func (s *memStore) Deployment(_ context.Context, id string) (*slipway.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deployments {
		if d.ID == id {
			c := *d
			return &c, nil
		}
	}
	return nil, slipway.Errorf(slipway.ENOTFOUND, "deployment %q not found", id)
}

func (s *memStore) Deployments(_ context.Context, project string, limit int) ([]*slipway.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*slipway.Deployment
	for _, d := range slices.Backward(s.deployments) {
		if d.Project == project {
			c := *d
			out = append(out, &c)
		}
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

func (s *memStore) DeleteProject(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.projects[name] == nil {
		return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", name)
	}
	for _, d := range s.deployments {
		if d.Project == name && !d.Status.Terminal() {
			return slipway.Errorf(slipway.ECONFLICT, "project %s has a deployment that has not ended (%s)", name, d.ID)
		}
	}
	s.deployments = slices.DeleteFunc(s.deployments, func(d *slipway.Deployment) bool { return d.Project == name })
	delete(s.projects, name)
	delete(s.machines, name)
	return nil
}

func (s *memStore) DeploymentOfCommit(_ context.Context, project, branch, commit string) (*slipway.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range slices.Backward(s.deployments) {
		if d.Project == project && strings.EqualFold(d.Commit, commit) && strings.TrimPrefix(d.Ref, "refs/heads/") == branch {
			c := *d
			return &c, nil
		}
	}
	return nil, slipway.Errorf(slipway.ENOTFOUND, "no deployment of %s", commit)
}

func (s *memStore) UnfinishedDeployments(context.Context) ([]*slipway.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*slipway.Deployment
	for _, d := range s.deployments {
		if !d.Status.Terminal() {
			c := *d
			out = append(out, &c)
		}
	}
	return out, nil
}

func (s *memStore) update(id string, f func(d *slipway.Deployment)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deployments {
		if d.ID == id {
			f(d)
			return nil
		}
	}
	return slipway.Errorf(slipway.ENOTFOUND, "deployment %q not found", id)
}

func (s *memStore) MarkBuilding(_ context.Context, id string, at time.Time) error {
	return s.update(id, func(d *slipway.Deployment) {
		if d.Status == slipway.StatusQueued {
			d.Status, d.StartedAt = slipway.StatusBuilding, &at
		}
	})
}

func (s *memStore) FinishDeployment(_ context.Context, id string, r slipway.DeploymentResult, at time.Time) error {
	return s.update(id, func(d *slipway.Deployment) {
		if d.Status.Terminal() {
			return
		}
		d.Status, d.Image, d.Digest, d.Error, d.FailedStep, d.Timings, d.Steps, d.FinishedAt =
			r.Status, r.Image, r.Digest, r.Error, r.FailedStep, r.Timings, r.Steps, &at
	})
}

func (s *memStore) AppendLogLines(_ context.Context, lines []slipway.LogLine) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lines {
		if !slices.ContainsFunc(s.logs[l.Deployment], func(e slipway.LogLine) bool { return e.N == l.N }) {
			s.logs[l.Deployment] = append(s.logs[l.Deployment], l)
		}
	}
	for id := range s.logs {
		slices.SortFunc(s.logs[id], func(a, b slipway.LogLine) int { return int(a.N - b.N) })
	}
	return nil
}

func (s *memStore) LogLines(_ context.Context, deployment string, from int64, limit int) ([]slipway.LogLine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slipway.LogLine
	for _, l := range s.logs[deployment] {
		if l.N >= from && (limit <= 0 || len(out) < limit) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (s *memStore) UpsertMachine(_ context.Context, m *slipway.Machine) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[m.Project]; !ok {
		return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", m.Project)
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = time.Now().UTC()
	}
	c := *m
	s.machines[m.Project] = &c
	return nil
}

func (s *memStore) Machine(_ context.Context, project string) (*slipway.Machine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.machines[project]
	if !ok {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no machine for project %q", project)
	}
	c := *m
	return &c, nil
}

func (s *memStore) Machines(context.Context) ([]*slipway.Machine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*slipway.Machine{}
	for _, m := range s.machines {
		c := *m
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Project < out[j].Project })
	return out, nil
}

func (s *memStore) Close() error { return nil }

// fakeDeployer records requests and creates queued deployments in a store.
type fakeDeployer struct {
	store *memStore
	mu    sync.Mutex
	reqs  []slipway.DeployRequest
	// panicWith, when set, makes Deploy panic (to test recovery).
	panicWith any
	n         int
}

func (f *fakeDeployer) Deploy(ctx context.Context, req slipway.DeployRequest) (*slipway.Deployment, bool, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.n++
	n := f.n
	f.mu.Unlock()
	if f.panicWith != nil {
		panic(f.panicWith)
	}
	p, err := f.store.Project(ctx, req.Project)
	if err != nil {
		return nil, false, err
	}
	if req.Ref == "" {
		req.Ref = p.Branch
	}
	if req.Commit == "" {
		req.Commit = "0123456789abcdef0123456789abcdef01234567"
	}
	d := &slipway.Deployment{
		ID:        fmt.Sprintf("d-%d", n),
		Project:   req.Project,
		Ref:       req.Ref,
		Commit:    req.Commit,
		Trigger:   req.Trigger,
		Status:    slipway.StatusQueued,
		CreatedAt: time.Now().UTC(),
	}
	return f.store.CreateDeployment(ctx, d)
}

func (f *fakeDeployer) requests() []slipway.DeployRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// memTokens is an in-memory slipway.TokenStore.
type memTokens struct {
	mu     sync.Mutex
	byHash map[string]*slipway.APIToken
}

var _ slipway.TokenStore = (*memTokens)(nil)

func newMemTokens() *memTokens { return &memTokens{byHash: map[string]*slipway.APIToken{}} }

func (m *memTokens) CreateToken(_ context.Context, t *slipway.APIToken, hash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byHash[hash]; ok || hash == "" {
		return slipway.Errorf(slipway.ECONFLICT, "token exists")
	}
	c := *t
	m.byHash[hash] = &c
	return nil
}

func (m *memTokens) TokenByHash(_ context.Context, hash string) (*slipway.APIToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byHash[hash]
	if !ok {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no such API token")
	}
	c := *t
	return &c, nil
}

func (m *memTokens) Tokens(context.Context) ([]*slipway.APIToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []*slipway.APIToken{}
	for _, t := range m.byHash {
		c := *t
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

func (m *memTokens) DeleteToken(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, t := range m.byHash {
		if t.ID == id {
			delete(m.byHash, h)
			return nil
		}
	}
	return slipway.Errorf(slipway.ENOTFOUND, "API token %q not found", id)
}

func (m *memTokens) TouchToken(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.byHash {
		if t.ID == id {
			t.LastUsedAt = &at
		}
	}
	return nil
}
