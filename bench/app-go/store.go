package main

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// note is one stored note.
type note struct {
	ID      string    `json:"id"`
	Title   string    `json:"title"`
	Body    string    `json:"body"`
	Tags    []string  `json:"tags,omitempty"`
	Created time.Time `json:"created"`
}

// store keeps the notes in memory; it is safe for concurrent use.
type store struct {
	mu    sync.RWMutex
	notes map[string]note
	now   func() time.Time
}

func newStore(now func() time.Time) *store {
	return &store{notes: map[string]note{}, now: now}
}

// add stores a new note and returns it with its id and time.
func (s *store) add(title, body string, tags []string) note {
	n := note{ID: uuid.NewString(), Title: title, Body: body, Tags: normalizeTags(tags), Created: s.now().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes[n.ID] = n
	return n
}

func (s *store) get(id string) (note, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.notes[id]
	return n, ok
}

func (s *store) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.notes[id]
	delete(s.notes, id)
	return ok
}

// list returns the notes carrying tag (all when tag is ""), oldest first.
func (s *store) list(tag string) []note {
	s.mu.RLock()
	out := make([]note, 0, len(s.notes))
	for _, n := range s.notes {
		if tag == "" || slices.Contains(n.Tags, strings.ToLower(tag)) {
			out = append(out, n)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b note) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// normalizeTags lower-cases, trims and de-duplicates tags.
func normalizeTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
