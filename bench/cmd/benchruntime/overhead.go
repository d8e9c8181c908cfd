package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// overheadResult is one image's warm figures at one concurrency: the
// container asked directly (its published port) and through the gateway,
// alternated in rounds.
type overheadResult struct {
	Image       string
	Concurrency int
	Direct      side
	Gateway     side
}

// side is what one side of a comparison measured over its rounds.
type side struct {
	lat     []time.Duration
	elapsed time.Duration
	errors  int
}

func (s *side) add(o side) {
	s.lat = append(s.lat, o.lat...)
	s.elapsed += o.elapsed
	s.errors += o.errors
}

func (s side) rps() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func (s side) p50() time.Duration { return pct(s.lat, 50) }

// measureOverhead starts an app of img and compares, at each concurrency,
// requests sent directly to its published port and through the gateway,
// in alternating rounds of roundTime each, after a warm-up.
func (e *env) measureOverhead(ctx context.Context, img image, concurrencies []int, rounds int, roundTime time.Duration) ([]overheadResult, error) {
	a, err := e.startApp(ctx, img, "warm-"+img.Name, "r1")
	if err != nil {
		return nil, err
	}
	var out []overheadResult
	for _, c := range concurrencies {
		var direct, gw client
		if e.inProcess {
			direct = newLoader(a.inst.Addr(), "", img.Path, c)
			gw = newLoader(e.gwAddr, a.inst.Project+".localhost", img.Path, c)
		} else {
			direct = &procLoader{addr: a.inst.Addr(), path: img.Path, c: c}
			gw = &procLoader{addr: e.gwAddr, host: a.inst.Project + ".localhost", path: img.Path, c: c}
		}
		direct.run(roundTime / 2) // warm up: connections, the app's caches
		gw.run(roundTime / 2)
		r := overheadResult{Image: img.Name, Concurrency: c}
		for i := range rounds {
			if i%2 == 0 {
				r.Direct.add(direct.run(roundTime))
				r.Gateway.add(gw.run(roundTime))
			} else {
				r.Gateway.add(gw.run(roundTime))
				r.Direct.add(direct.run(roundTime))
			}
		}
		direct.close()
		gw.close()
		if r.Direct.errors+r.Gateway.errors > 0 {
			return nil, fmt.Errorf("%s at concurrency %d: %d direct and %d gateway requests failed, e.g. %s",
				img.Name, c, r.Direct.errors, r.Gateway.errors, cmpOr(direct.err(), gw.err()))
		}
		out = append(out, r)
	}
	return out, nil
}

// client is one side's load: in this process (loader) or in a child
// process (procLoader).
type client interface {
	// run sends requests for d and returns what they measured.
	run(d time.Duration) side
	close()
	// err is the first error seen, or "".
	err() string
}

// loader sends GETs to one address from c concurrent clients over
// keep-alive connections (the app may close them: busybox httpd does).
type loader struct {
	c        int
	url      string
	tr       *http.Transport
	client   *http.Client
	firstErr atomic.Value
}

func newLoader(addr, host, path string, c int) *loader {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: c, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	if host == "" {
		host = addr
	}
	return &loader{c: c, url: "http://" + host + path, tr: tr, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (l *loader) close() { l.tr.CloseIdleConnections() }

func (l *loader) err() string {
	if e, ok := l.firstErr.Load().(error); ok {
		return e.Error()
	}
	return ""
}

// run sends requests from l.c clients for d and returns their latencies.
func (l *loader) run(d time.Duration) side {
	lat := make([][]time.Duration, l.c)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for w := range l.c {
		wg.Go(func() {
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := l.get(); err != nil {
					errs.Add(1)
					l.firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	return side{lat: slices.Concat(lat...), elapsed: time.Since(start), errors: int(errs.Load())}
}

func (l *loader) get() error {
	resp, err := l.client.Get(l.url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", l.url, resp.Status)
	}
	return nil
}

// pct returns the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)*p/100, len(s)-1)]
}
