package client_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
)

func (s *fakeStore) setStatus(id string, st slipway.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deployments {
		if d.ID == id {
			d.Status = st
			if st.Terminal() {
				now := time.Now()
				d.FinishedAt = &now
			}
		}
	}
}

func (s *fakeStore) appendLines(id string, ns ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range ns {
		s.logs = append(s.logs, slipway.LogLine{Deployment: id, N: n, Time: time.Now().UTC(), Stream: "stdout", Text: fmt.Sprintf("line %d", n)})
	}
}

func TestFollow(t *testing.T) {
	// The first WebSocket upgrade fails as during a server restart: the
	// client reconnects.
	var upgrades atomic.Int32
	c, store, _, _ := newServerWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "" && upgrades.Add(1) == 1 {
				http.Error(w, "restarting", http.StatusBadGateway)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	store.add(&slipway.Deployment{ID: "d-1", Project: "web", Status: slipway.StatusBuilding, CreatedAt: time.Now()})
	store.appendLines("d-1", 1, 2, 3)
	go func() {
		time.Sleep(300 * time.Millisecond)
		store.appendLines("d-1", 4, 5)
		time.Sleep(100 * time.Millisecond)
		store.setStatus("d-1", slipway.StatusFailed)
	}()
	var got []string
	err := c.FollowLogs(t.Context(), "d-1", 2, func(l slipway.LogLine) error {
		got = append(got, fmt.Sprintf("%d:%s", l.N, l.Text))
		return nil
	})
	if err != nil {
		t.Fatalf("FollowLogs: %v", err)
	}
	if strings.Join(got, ",") != "2:line 2,3:line 3,4:line 4,5:line 5" {
		t.Errorf("FollowLogs from 2 = %v", got)
	}
	if upgrades.Load() < 2 {
		t.Errorf("%d upgrades: the client did not reconnect", upgrades.Load())
	}

	var states []slipway.Status
	err = c.FollowDeployment(t.Context(), "d-1", func(d *slipway.Deployment) error {
		states = append(states, d.Status)
		return nil
	})
	if err != nil || len(states) != 1 || states[0] != slipway.StatusFailed {
		t.Errorf("FollowDeployment of a finished deployment = %v, %v; want [failed]", states, err)
	}

	err = c.FollowLogs(t.Context(), "d-404", 1, func(slipway.LogLine) error { return nil })
	if slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("FollowLogs(d-404) = %v, want not_found", err)
	}
}

func TestTokensAndAuth(t *testing.T) {
	c, store, url, _ := newServerWith(t, nil)
	store.add(&slipway.Deployment{ID: "d-1", Project: "web", Status: slipway.StatusSucceeded, CreatedAt: time.Now()})
	ctx := t.Context()
	token, rec, err := c.CreateToken(ctx, "ci")
	if err != nil || !strings.HasPrefix(token, slipway.TokenPrefix) || rec.Name != "ci" {
		t.Fatalf("CreateToken = %q, %+v, %v", token, rec, err)
	}
	ci := client.New(url, nil).WithToken(token)
	list, err := ci.Tokens(ctx)
	if err != nil || len(list) != 2 || list[1].ID != rec.ID {
		t.Errorf("Tokens = %+v, %v", list, err)
	}
	if _, err := c.RevokeToken(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	for name, cl := range map[string]*client.Client{"no token": client.New(url, nil), "revoked token": ci} {
		_, err := cl.Projects(ctx)
		if slipway.ErrorCode(err) != slipway.EUNAUTHORIZED || !strings.Contains(err.Error(), "slipway token create") {
			t.Errorf("%s: Projects = %v, want unauthorized with how to get a token", name, err)
		}
		err = cl.FollowLogs(ctx, "d-1", 1, func(slipway.LogLine) error { return nil })
		if slipway.ErrorCode(err) != slipway.EUNAUTHORIZED {
			t.Errorf("%s: FollowLogs = %v, want unauthorized", name, err)
		}
	}
}
