package logtest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/slipway-ci/slipway"
)

// MemStore is an in-memory slipway.Store that keeps only log lines: an
// archiver's store. Every other method panics (the embedded Store is nil).
// It counts writes so tests can see redeliveries, and can be told to fail.
type MemStore struct {
	slipway.Store

	mu        sync.Mutex
	lines     map[string]map[int64]slipway.LogLine
	writes    int // lines handed to AppendLogLines and stored or ignored
	dupWrites int // of those, lines it already had
	failNext  int // fail this many AppendLogLines calls
	refuse    map[string]bool
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{lines: make(map[string]map[int64]slipway.LogLine), refuse: make(map[string]bool)}
}

// AppendLogLines stores the lines it does not have yet, as the real
// stores do.
func (s *MemStore) AppendLogLines(ctx context.Context, lines []slipway.LogLine) error {
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

// LogLines returns the deployment's lines from line from on, at most
// limit of them unless limit is 0.
func (s *MemStore) LogLines(ctx context.Context, deployment string, from int64, limit int) ([]slipway.LogLine, error) {
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

// Counts returns how many lines AppendLogLines was given, and how many of
// them it had already.
func (s *MemStore) Counts() (writes, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.dupWrites
}

// FailNext makes the next n AppendLogLines calls fail (a retryable error).
func (s *MemStore) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Refuse makes AppendLogLines refuse the deployment's lines for good
// (ENOTFOUND, as for a deployment that was deleted).
func (s *MemStore) Refuse(deployment string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse[deployment] = true
}

// Close does nothing.
func (s *MemStore) Close() error { return nil }
