package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rounds is how many times a sub-benchmark of BenchmarkOverhead alternates
// between the backend and the gateway, so that a burst of other load on
// the machine falls on both sides alike.
const rounds = 10

// BenchmarkOverhead measures, side by side in one run, requests to a
// backend made directly and through the gateway (the app awake), at
// several concurrencies, for two backends: "hello" answers at once (the
// gateway's whole cost shows), "1ms" takes a millisecond like a small
// app's handler. Each sub-benchmark sends b.N requests, half to each side,
// alternating in rounds, and reports both sides' req/s and p50 latency,
// their ratio and the p50 overhead; the parent prints them as a table.
// Client, gateway and backend share this machine's cores.
//
//	go test -run '^$' -bench Overhead -benchtime 20000x ./gateway
func BenchmarkOverhead(b *testing.B) {
	backends := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"hello", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "Hello, world\n") }},
		{"1ms", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Millisecond)
			_, _ = io.WriteString(w, "Hello, world\n")
		}},
	}
	var rows []string
	for _, be := range backends {
		direct, stop := benchBackend(b, be.handler)
		gw := benchGateway(b, &fakeApp{addr: direct})
		for _, c := range []int{1, 8, 32, 128} {
			var row string
			b.Run(fmt.Sprintf("%s/c=%d", be.name, c), func(b *testing.B) {
				d, g := compare(b, newLoader(direct, "", c), newLoader(gw, "demo.localhost", c))
				row = fmt.Sprintf("| %s | %d | %.0f | %.0f | %.2f | %.0f | %.0f | %+.0f |", be.name, c,
					d.rps(), g.rps(), g.rps()/d.rps(), d.p50us(), g.p50us(), g.p50us()-d.p50us())
			})
			rows = append(rows, row)
		}
		stop()
	}
	// b.Log of a benchmark with sub-benchmarks is not shown: print.
	fmt.Printf("\n| backend | concurrency | direct req/s | gateway req/s | ratio | direct p50 µs | gateway p50 µs | overhead p50 µs |\n|---|---|---|---|---|---|---|---|\n%s\n",
		strings.Join(rows, "\n"))
}

// compare sends b.N requests, half through each loader, alternating in
// rounds, and reports both sides' figures.
func compare(b *testing.B, direct, gw *loader) (d, g *figures) {
	defer direct.close()
	defer gw.close()
	direct.run(b, 5*direct.c) // warm up: open the keep-alive connections
	gw.run(b, 5*gw.c)
	d, g = &figures{}, &figures{}
	per := max(b.N/(2*rounds), 1)
	b.ResetTimer()
	for range rounds {
		d.add(direct.run(b, per))
		g.add(gw.run(b, per))
	}
	b.StopTimer()
	b.ReportMetric(d.rps(), "direct-req/s")
	b.ReportMetric(g.rps(), "gateway-req/s")
	b.ReportMetric(g.rps()/d.rps(), "ratio")
	b.ReportMetric(g.p50us()-d.p50us(), "overhead-p50-µs")
	return d, g
}

// figures accumulate a side's rounds.
type figures struct {
	lat     []time.Duration
	elapsed time.Duration
}

func (f *figures) add(r round) {
	f.lat = append(f.lat, r.lat...)
	f.elapsed += r.elapsed
}

func (f *figures) rps() float64 { return float64(len(f.lat)) / f.elapsed.Seconds() }

func (f *figures) p50us() float64 {
	if len(f.lat) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(f.lat))
	return float64(s[len(s)/2]) / float64(time.Microsecond)
}

// round is what one run of a loader measured.
type round struct {
	lat     []time.Duration
	elapsed time.Duration
}

// loader sends GETs to one address from c concurrent clients over
// keep-alive connections.
type loader struct {
	c      int
	url    string
	tr     *http.Transport
	client *http.Client
}

// newLoader returns a loader to addr, with Host host if set.
func newLoader(addr, host string, c int) *loader {
	tr := &http.Transport{MaxIdleConnsPerHost: c, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	url := "http://" + addr + "/"
	if host != "" {
		url = "http://" + host + "/"
	}
	return &loader{c: c, url: url, tr: tr, client: &http.Client{Transport: tr}}
}

func (l *loader) close() { l.tr.CloseIdleConnections() }

// run sends n requests and returns their latencies and the time it took.
func (l *loader) run(b *testing.B, n int) round {
	var next atomic.Int64
	lat := make([][]time.Duration, l.c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range l.c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := get(l.client, l.url); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	return round{lat: slices.Concat(lat...), elapsed: time.Since(start)}
}

// get GETs url and reads the whole answer.
func get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// benchBackend serves h on a real socket and returns its address.
func benchBackend(b *testing.B, h http.Handler) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close(); <-done }
}

// benchGateway serves a gateway to app (as demo) and returns its address.
func benchGateway(b *testing.B, app *fakeApp) string {
	g, err := New(Config{Apps: fakeApps{demo: app}, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := Listen("127.0.0.1:0", g, discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close(context.Background()) })
	return srv.Addr().String()
}
