package github

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// TestSlowBody: a client that sends its headers and then dribbles the
// body a byte at a time gets 408 once ReadTimeout has passed, and its
// connection is closed, instead of holding the handler for as long as it
// likes.
func TestSlowBody(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	store := sqlitetest.Open(t)
	srv := httptest.NewServer(NewHandler(HandlerConfig{Store: store, Deployer: &sqlitetest.Deployer{Store: store},
		ReadTimeout: readTimeout, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Fail rather than hang if the server never answers.
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	body := push(t, nil)
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"+
		"X-GitHub-Delivery: slow-1\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n", Path, Sign(secret, body), len(body))
	stop := make(chan struct{})
	dribbled := make(chan struct{})
	go func() {
		defer close(dribbled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(body)-1; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write(body[i : i+1]); err != nil {
				return // the server closed the connection
			}
		}
	}()
	defer func() { close(stop); <-dribbled }()

	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to a slow body: %v", err)
	}
	defer resp.Body.Close()
	elapsed := time.Since(start)
	raw, _ := io.ReadAll(resp.Body)
	var r Response
	_ = json.Unmarshal(raw, &r)
	if resp.StatusCode != http.StatusRequestTimeout || r.Message != "the payload did not arrive within 300ms" {
		t.Errorf("slow body = %d %q, want 408 \"the payload did not arrive within 300ms\"", resp.StatusCode, raw)
	}
	// The whole body would take len(body) × 20 ms (over two minutes).
	if elapsed > 5*time.Second {
		t.Errorf("the answer took %s, want about %s", elapsed, readTimeout)
	}
}
