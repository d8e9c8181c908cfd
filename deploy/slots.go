package deploy

import (
	"context"
	"sync"
)

// Slots limits how many builds run at once across all projects. Waiting
// deployments get slots in the order they asked; since a project asks for
// at most one slot at a time (ProjectWorkflow runs its deployments one by
// one), that order is fair across projects.
//
// Slots live in the server's memory: after a restart, builds that were
// running re-acquire their slot when their activity is retried, and for a
// while more than the limit may run.
type Slots struct {
	mu      sync.Mutex
	limit   int
	holders map[string]bool
	waiting []*slotWaiter
}

type slotWaiter struct {
	id    string
	ready chan struct{}
}

// NewSlots returns a limit of n concurrent builds (n < 1 means 1).
func NewSlots(n int) *Slots {
	return &Slots{limit: max(n, 1), holders: map[string]bool{}}
}

// Acquire blocks until deployment id holds a slot or ctx ends. Acquiring a
// slot id already holds returns at once.
func (s *Slots) Acquire(ctx context.Context, id string) error {
	s.mu.Lock()
	if s.holders[id] {
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{id: id, ready: make(chan struct{})}
	s.waiting = append(s.waiting, w)
	s.grant()
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-w.ready:
			// Granted as we gave up: hand it on.
			delete(s.holders, id)
		default:
			for i, o := range s.waiting {
				if o == w {
					s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
					break
				}
			}
		}
		s.grant()
		return ctx.Err()
	}
}

// TryAcquire gives deployment id a slot if one is free and nobody is
// waiting for one, and reports whether id holds a slot. It never waits.
func (s *Slots) TryAcquire(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.holders[id] && len(s.holders)+len(s.waiting) < s.limit {
		s.holders[id] = true
	}
	return s.holders[id]
}

// Release frees id's slot, if it holds one. Safe to call more than once.
func (s *Slots) Release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.holders, id)
	s.grant()
}

// Free reports whether a deployment asking now would get a slot at once:
// a slot is free and no one is waiting for one.
func (s *Slots) Free() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.holders)+len(s.waiting) < s.limit
}

// Running is the number of slots held.
func (s *Slots) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.holders)
}

// grant hands free slots to the longest waiting. Callers hold s.mu.
func (s *Slots) grant() {
	for len(s.holders) < s.limit && len(s.waiting) > 0 {
		w := s.waiting[0]
		s.waiting = s.waiting[1:]
		s.holders[w.id] = true
		close(w.ready)
	}
}
