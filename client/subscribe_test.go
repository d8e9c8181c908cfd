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
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// appendLines stores lines ns of deployment id.
func appendLines(t *testing.T, store slipway.Store, id string, ns ...int64) error {
	var lines []slipway.LogLine
	for _, n := range ns {
		lines = append(lines, slipway.LogLine{Deployment: id, N: n, Time: time.Now().UTC(), Stream: "stdout", Text: fmt.Sprintf("line %d", n)})
	}
	return store.AppendLogLines(t.Context(), lines)
}

func TestFollow(t *testing.T) {
	// The first WebSocket upgrade fails as during a server restart: the
	// client reconnects.
	var upgrades atomic.Int32
	c, store, _ := newServerWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "" && upgrades.Add(1) == 1 {
				http.Error(w, "restarting", http.StatusBadGateway)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	addWeb(t, store)
	sqlitetest.AddDeployment(t, store, slipway.Deployment{ID: "d-1", Project: "web", Status: slipway.StatusBuilding})
	if err := appendLines(t, store, "d-1", 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	// The build goes on as the follower reads: more lines once it has
	// line 3, the end once it has those.
	var got []string
	err := c.FollowLogs(t.Context(), "d-1", 2, func(l slipway.LogLine) error {
		got = append(got, fmt.Sprintf("%d:%s", l.N, l.Text))
		switch l.N {
		case 3:
			return appendLines(t, store, "d-1", 4, 5)
		case 5:
			return sqlitetest.Advance(t.Context(), store, slipway.Deployment{ID: "d-1", Status: slipway.StatusFailed})
		}
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
	c, store, url := newServerWith(t, nil)
	addWeb(t, store)
	sqlitetest.AddDeployment(t, store, slipway.Deployment{ID: "d-1", Project: "web", Status: slipway.StatusSucceeded})
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
