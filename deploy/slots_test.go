package deploy

import (
	"context"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

func TestSlotsLimitAndOrder(t *testing.T) {
	s := NewSlots(2)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		if err := s.Acquire(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Acquire(ctx, "a"); err != nil || s.Running() != 2 {
		t.Fatalf("re-acquiring a held slot: %v, running %d", err, s.Running())
	}
	got := make(chan string, 3)
	for _, id := range []string{"c", "d", "e"} {
		go func() {
			if err := s.Acquire(ctx, id); err == nil {
				got <- id
			}
		}()
		// Let each waiter queue before the next (their order is the test).
		testenv.WaitFor(t, 5*time.Second, id+" waiting for a slot", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			n := len(s.waiting)
			return n > 0 && s.waiting[n-1].id == id
		})
	}
	select {
	case id := <-got:
		t.Fatalf("%s got a slot while 2 of 2 were held", id)
	case <-time.After(50 * time.Millisecond):
	}
	for _, step := range []struct{ release, want string }{{"a", "c"}, {"b", "d"}, {"c", "e"}} {
		s.Release(step.release)
		select {
		case id := <-got:
			if id != step.want {
				t.Fatalf("after releasing %s the slot went to %s, want %s (first come, first served)", step.release, id, step.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never got a slot", step.want)
		}
	}
}

func TestSlotsCancelledWaiter(t *testing.T) {
	s := NewSlots(1)
	if err := s.Acquire(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(ctx, "b"); err == nil {
		t.Fatal("b got the only slot while a held it")
	}
	s.Release("a")
	if err := s.Acquire(t.Context(), "c"); err != nil || s.Running() != 1 {
		t.Fatalf("after a gave up its slot and b gave up waiting, c: %v, running %d", err, s.Running())
	}
}

// Free says whether a deployment asking now would build at once: the
// server wakes a machine early only then.
func TestSlotsTryAcquire(t *testing.T) {
	s := NewSlots(1)
	if !s.TryAcquire("a") || !s.TryAcquire("a") {
		t.Fatal("a free slot was not taken, or taken only once")
	}
	if s.TryAcquire("b") {
		t.Fatal("b took a slot beyond the limit")
	}
	if s.Running() != 1 {
		t.Fatalf("%d slots held, want 1", s.Running())
	}
	// b asks in line; once a releases, b has it and c must not take it.
	got := make(chan error, 1)
	go func() { got <- s.Acquire(t.Context(), "b") }()
	s.Release("a")
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if s.TryAcquire("c") {
		t.Error("c took the slot b waited for")
	}
	s.Release("b")
	if !s.TryAcquire("c") {
		t.Error("c did not take the free slot")
	}
}

func TestSlotsFree(t *testing.T) {
	s := NewSlots(1)
	if !s.Free() {
		t.Fatal("an unused limit of 1 is not free")
	}
	if err := s.Acquire(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if s.Free() {
		t.Error("a full limit is free")
	}
	s.Release("a")
	if !s.Free() {
		t.Error("the limit is not free after the release")
	}
}
