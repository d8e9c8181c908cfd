package logtest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// Store is the real store (sqlitetest.Open) holding project Project and
// the deployments a test's lines belong to, building. Lines of any other
// deployment are refused (ENOTFOUND), as for a deployment that was
// deleted. It counts the lines it stores, so tests can see redeliveries,
// and can be told to fail.
type Store struct {
	*sqlite.DB

	mu        sync.Mutex
	stored    map[string]map[int64]bool
	writes    int // lines handed to AppendLogLines and stored or ignored
	dupWrites int // of those, lines it already had
	failNext  int // fail this many AppendLogLines calls
}

// NewStore returns a Store with the deployments of the given ids, closed
// when the test ends.
func NewStore(t testing.TB, deployments ...string) *Store {
	t.Helper()
	db := sqlitetest.Open(t)
	sqlitetest.AddProject(t, db, slipway.Project{Name: Project, Repo: "file:///r"})
	for _, id := range deployments {
		sqlitetest.AddDeployment(t, db, slipway.Deployment{ID: id, Project: Project, Status: slipway.StatusBuilding})
	}
	return &Store{DB: db, stored: map[string]map[int64]bool{}}
}

// AppendLogLines stores the lines, unless told to fail, and counts them.
func (s *Store) AppendLogLines(ctx context.Context, lines []slipway.LogLine) error {
	s.mu.Lock()
	if s.failNext > 0 {
		s.failNext--
		s.mu.Unlock()
		return errors.New("logtest: disk on fire")
	}
	s.mu.Unlock()
	if err := s.DB.AppendLogLines(ctx, lines); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lines {
		s.writes++
		m := s.stored[l.Deployment]
		if m == nil {
			m = map[int64]bool{}
			s.stored[l.Deployment] = m
		}
		if m[l.N] {
			s.dupWrites++
		}
		m[l.N] = true
	}
	return nil
}

// Counts returns how many lines AppendLogLines stored (or ignored, having
// them already), and how many of them it had already.
func (s *Store) Counts() (writes, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.dupWrites
}

// FailNext makes the next n AppendLogLines calls fail (a retryable error).
func (s *Store) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}
