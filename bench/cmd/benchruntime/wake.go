package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"time"

	"github.com/slipway-ci/slipway/apps"
)

// wakeResult is one image's wake figures: frozen and stopped through the
// gateway, and `podman start` + first byte by hand, interleaved.
type wakeResult struct {
	Image   string
	Frozen  []time.Duration // freeze, then GET through the gateway: first byte
	Stopped []time.Duration // stop, then GET through the gateway: first byte
	ByHand  []time.Duration // podman stop, then podman start + GET until 200
	// StartPhase and HealthPhase are the stopped wakes' phases (Wake's
	// report: the runtime's start, then the health check).
	StartPhase, HealthPhase []time.Duration
}

// settle is how long the benchmark lets an app lie asleep before it wakes
// it: podman's own clean-up after a stop (conmon's `podman container
// cleanup`) is over by then, as it is for an app asleep for minutes.
const settle = 300 * time.Millisecond

// measureWakes runs rounds of: freeze + wake through the gateway, stop +
// wake through the gateway, and `podman start` by hand of an identical
// container, alternating which of the last two comes first.
func (e *env) measureWakes(ctx context.Context, img image, rounds int) (wakeResult, error) {
	res := wakeResult{Image: img.Name}
	gwApp, err := e.startApp(ctx, img, "wake-"+img.Name, "gw")
	if err != nil {
		return res, err
	}
	hand, err := e.startApp(ctx, img, "hand-"+img.Name, "hand")
	if err != nil {
		return res, err
	}
	url := "http://" + gwApp.inst.Project + ".localhost" + img.Path
	for i := range rounds {
		if err := gwApp.sleep(ctx, e.gw, apps.Frozen); err != nil {
			return res, err
		}
		time.Sleep(settle)
		d, err := e.firstByteGateway(url)
		if err != nil {
			return res, fmt.Errorf("frozen %s: %w", img.Name, err)
		}
		res.Frozen = append(res.Frozen, d)
		steps := []func() error{
			func() error { return e.stoppedRound(ctx, gwApp, url, &res) },
			func() error { return e.byHandRound(ctx, hand, img, &res) },
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func (e *env) stoppedRound(ctx context.Context, a *app, url string, res *wakeResult) error {
	if err := a.sleep(ctx, e.gw, apps.Stopped); err != nil {
		return err
	}
	time.Sleep(settle)
	d, err := e.firstByteGateway(url)
	if err != nil {
		return fmt.Errorf("stopped %s: %w", a.inst.Name, err)
	}
	rep := a.lastWake()
	if rep.From != apps.Stopped {
		return fmt.Errorf("stopped %s: the wake found it %s, not stopped", a.inst.Name, rep.From)
	}
	res.Stopped = append(res.Stopped, d)
	res.StartPhase = append(res.StartPhase, rep.Start)
	res.HealthPhase = append(res.HealthPhase, rep.Health)
	return nil
}

// byHandRound stops the identical container with the podman CLI, then
// times `podman start` and polling its port (every millisecond, fresh
// connections) until it answers 200.
func (e *env) byHandRound(ctx context.Context, a *app, img image, res *wakeResult) error {
	if out, err := podmanAt(ctx, e.dir, "stop", "--time", "5", a.inst.Name); err != nil {
		return fmt.Errorf("podman stop %s: %v: %s", a.inst.Name, err, out)
	}
	time.Sleep(settle)
	t0 := time.Now()
	if out, err := podmanAt(ctx, e.dir, "start", a.inst.Name); err != nil {
		return fmt.Errorf("podman start %s: %v: %s", a.inst.Name, err, out)
	}
	url := "http://" + a.inst.Addr() + img.Path
	for {
		d, err := firstByte(e.direct, url, "", t0)
		if err == nil {
			res.ByHand = append(res.ByHand, d)
			return nil
		}
		if time.Since(t0) > 30*time.Second {
			return fmt.Errorf("by hand %s: %w", a.inst.Name, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// firstByteGateway asks url through the gateway on a new connection and
// returns the time until the answer's first byte.
func (e *env) firstByteGateway(url string) (time.Duration, error) {
	return firstByte(e.fresh, url, e.gwAddr, time.Now())
}

// firstByte GETs url (through the proxy address via, if set) and returns
// the time from t0 to the answer's first byte; the answer must be 200.
func firstByte(c *http.Client, url, via string, t0 time.Time) (time.Duration, error) {
	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if via != "" {
		req.URL.Host = via
		req.Host = hostOf(url)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s (Server-Timing %q)", url, resp.Status, resp.Header.Get("Server-Timing"))
	}
	return first.Sub(t0), nil
}

// hostOf returns the host of an http:// URL.
func hostOf(url string) string {
	h := url[len("http://"):]
	for i, c := range h {
		if c == '/' {
			return h[:i]
		}
	}
	return h
}

// freshClient opens a new connection for every request, as a browser's
// first visit does.
func freshClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true, TLSClientConfig: &tls.Config{},
	}}
}
