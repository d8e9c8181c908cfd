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

// BenchmarkOverhead measures, side by side in one run, requests to a
// backend made directly and through the gateway (the app awake), at
// several concurrencies, for two backends: "hello" answers at once (the
// gateway's whole cost shows), "1ms" takes a millisecond like a small
// app's handler. Each sub-benchmark reports req/s and the p50 latency; the
// parent prints the table with the ratio of requests/s and the p50
// overhead. Client, gateway and backend share this machine's cores.
//
//	go test -run '^$' -bench Overhead -benchtime 3s ./gateway
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
		app := &fakeApp{t: nil, handler: be.handler}
		direct, stop := benchBackend(b, be.handler)
		app.addr = direct
		gw := benchGateway(b, app)
		for _, c := range []int{1, 8, 32, 128} {
			var d, g figures
			b.Run(fmt.Sprintf("%s/direct/c=%d", be.name, c), func(b *testing.B) { d = load(b, direct, "", c) })
			b.Run(fmt.Sprintf("%s/gateway/c=%d", be.name, c), func(b *testing.B) { g = load(b, gw, "demo.localhost", c) })
			rows = append(rows, fmt.Sprintf("| %s | %d | %.0f | %.0f | %.2f | %.0f | %.0f | %+.0f |", be.name, c,
				d.rps, g.rps, g.rps/d.rps, d.p50us, g.p50us, g.p50us-d.p50us))
		}
		stop()
	}
	// b.Log of a benchmark with sub-benchmarks is not shown: print.
	fmt.Printf("\n| backend | concurrency | direct req/s | gateway req/s | ratio | direct p50 µs | gateway p50 µs | overhead p50 µs |\n|---|---|---|---|---|---|---|---|\n%s\n",
		strings.Join(rows, "\n"))
}

// figures are one load's results.
type figures struct{ rps, p50us float64 }

// load sends b.N GETs to addr (with Host host, if set) from c concurrent
// clients over keep-alive connections, and reports req/s and p50.
func load(b *testing.B, addr, host string, c int) figures {
	tr := &http.Transport{MaxIdleConnsPerHost: c, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + addr + "/"
	if host != "" {
		url = "http://" + host + "/"
	}
	var wg sync.WaitGroup
	for range c { // warm up: open the keep-alive connections, both sides
		wg.Go(func() {
			for range 5 {
				if err := get(client, url); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var next atomic.Int64
	lat := make([][]time.Duration, c)
	b.ResetTimer()
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := get(client, url); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	f := figures{rps: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		f.p50us = float64(all[len(all)/2]) / float64(time.Microsecond)
	}
	b.ReportMetric(f.rps, "req/s")
	b.ReportMetric(f.p50us, "p50-µs")
	return f
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
