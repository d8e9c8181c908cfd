// Command benchlogs measures the log path (issue 4's benchmark): lines per
// second from the agent's writer (a publish.Publisher's LineWriter, as the
// agent writes podman's output) through JetStream to a subscriber, for one
// build and for ten concurrent builds, and the latency from a line being
// written to a subscriber receiving it.
//
// Two subscribers are measured, each in its own pass:
//
//   - watcher: archive.Watcher.FollowLog in process, the JetStream ordered
//     consumer (after a replay of the store) that the API's subscriptions
//     are built on;
//   - websocket: the real GraphQL API (graphql.NewHandler on a loopback
//     HTTP server, with the Watcher as its Live source and a SQLite store)
//     and client.FollowLogs, i.e. the deploymentLogLines subscription over
//     graphql-transport-ws, as `slipway logs -f` and the web UI follow.
//
// The embedded NATS server, the archiver (writing every line into SQLite,
// as `slipway server` does) and everything else run in this one process,
// sharing the machine's cores. It writes bench/results/LOGS.md.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/client"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/graphql"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite"
)

// Targets from issue 4.
const (
	targetLinesPerSec = 50000
	targetP99         = 100 * time.Millisecond
)

func main() {
	var (
		lines      = flag.Int("lines", 200000, "lines per scenario (split between the builds)")
		out        = flag.String("out", "bench/results/LOGS.md", "where to write the Markdown table (empty: nowhere)")
		subs       = flag.String("subscribers", "watcher,websocket", "subscribers to measure: watcher, websocket")
		builds     = flag.String("builds", "1,10", "concurrent builds per scenario")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the measured passes to this file")
		label      = flag.String("label", "", "a label for this run, printed with the table")
		rates      = flag.String("rate", "2000,50000", "lines/s of the paced scenarios, comma-separated (one build written at a steady rate for ten seconds, for latency when the path keeps up); 0: no paced scenario")
	)
	flag.Parse()
	var paced []int
	for _, f := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			log.Fatalf("benchlogs: -rate: %q is not a number of lines per second", f)
		}
		if n > 0 {
			paced = append(paced, n)
		}
	}
	if err := run(*lines, *out, strings.Split(*subs, ","), *builds, paced, *cpuprofile, *label); err != nil {
		log.Fatalf("benchlogs: %v", err)
	}
}

// result is one scenario's figures.
type result struct {
	Subscriber string
	Builds     int
	Rate       int // lines/s the writer was paced at; 0: as fast as it can
	Lines      int
	Published  float64 // lines/s until every line was acknowledged by JetStream
	Received   float64 // lines/s from the first write to the last line received
	P50, P99   time.Duration
}

// keptUp says whether the subscriber received a paced run's lines as fast
// as they were written (within 1 %).
func (r result) keptUp() bool { return r.Rate > 0 && r.Received >= 0.99*float64(r.Rate) }

// met says whether the row meets what it measures: a flood (written as
// fast as the writer can) its throughput, where the p99 is the backlog's;
// a paced run the latency, and at ≥ targetLinesPerSec both targets at once.
func (r result) met() string {
	switch {
	case r.Rate == 0 && r.Builds == 1:
		return yesNo(r.Received >= targetLinesPerSec) + " (lines/s)"
	case r.Rate == 0:
		return "-"
	case r.Rate >= targetLinesPerSec:
		return yesNo(r.keptUp() && r.P99 < targetP99) + " (lines/s and p99)"
	default:
		return yesNo(r.keptUp() && r.P99 < targetP99) + " (p99)"
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func run(lines int, out string, subs []string, buildsFlag string, rates []int, cpuprofile, label string) error {
	var buildCounts []int
	for _, f := range strings.Split(buildsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-builds: %q is not a number of builds", f)
		}
		buildCounts = append(buildCounts, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := startEnv(ctx)
	if err != nil {
		return err
	}
	defer env.close()

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	loadBefore := loadAverage()
	var results []result
	for _, sub := range subs {
		sub = strings.TrimSpace(sub)
		if sub != "watcher" && sub != "websocket" {
			return fmt.Errorf("-subscribers: unknown subscriber %q (watcher, websocket)", sub)
		}
		type scen struct{ builds, lines, rate int }
		var scens []scen
		for _, b := range buildCounts {
			scens = append(scens, scen{b, lines, 0})
		}
		for _, rate := range rates {
			scens = append(scens, scen{1, rate * 10, rate}) // ten seconds
		}
		for _, sc := range scens {
			// Each scenario starts on a quiet server: the search index
			// has caught up with the previous scenario's lines.
			if waited, err := env.waitIndexed(ctx, 2*time.Minute); err != nil {
				return err
			} else if waited > time.Second {
				fmt.Printf("(waited %s for the search index to catch up)\n", waited.Round(100*time.Millisecond))
			}
			r, err := env.scenario(ctx, sub, sc.builds, sc.lines, sc.rate)
			if err != nil {
				return fmt.Errorf("%s, %d builds: %w", sub, sc.builds, err)
			}
			fmt.Printf("%-9s %2d build(s) %5d/s: %7d lines, published %7.0f lines/s, received %7.0f lines/s, p50 %8s, p99 %8s\n",
				r.Subscriber, r.Builds, r.Rate, r.Lines, r.Published, r.Received, r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond))
			results = append(results, r)
		}
	}
	table := report(results, label, loadBefore, loadAverage())
	fmt.Print("\n" + table)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s\n", out)
	}
	return nil
}

// env is the embedded NATS server, the store, the archiver, the watcher
// and the API, as `slipway server` wires them.
type env struct {
	dir   string
	ns    *natsserver.Server
	creds *credential.Issuer
	// serverOpts authenticate the server's clients (archiver, watcher).
	serverOpts []nats.Option
	store      *sqlite.DB
	arch       *archive.Archiver
	watcher    *archive.Watcher
	api        *client.Client
	hs         *http.Server
	seq        atomic.Int64
}

// waitIndexed waits until the store's search index holds every stored
// line (the background indexer is idle), at most limit.
func (e *env) waitIndexed(ctx context.Context, limit time.Duration) (time.Duration, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "slipway.db")+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	start := time.Now()
	for {
		var behind int64
		if err := db.QueryRowContext(ctx, `SELECT COALESCE((SELECT MAX(rowid) FROM log_lines), 0) - (SELECT indexed_upto FROM log_index)`).Scan(&behind); err != nil {
			return 0, fmt.Errorf("read the search index's progress: %w", err)
		}
		if behind <= 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("the search index is still %d lines behind after %s", behind, limit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func startEnv(ctx context.Context) (*env, error) {
	dir, err := os.MkdirTemp("", "slipway-benchlogs-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if e.creds, err = credential.Load(filepath.Join(dir, credential.KeyFile)); err != nil {
		return nil, err
	}
	tok, err := e.creds.Server(credential.NATS)
	if err != nil {
		return nil, err
	}
	e.serverOpts = []nats.Option{nats.Token(tok)}
	if e.ns, err = natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dir, "nats"), Credentials: e.creds}); err != nil {
		return nil, err
	}
	if e.store, err = sqlite.Open(filepath.Join(dir, "slipway.db")); err != nil {
		return nil, err
	}
	if e.arch, err = archive.Start(ctx, archive.Config{URL: e.ns.URL(), Options: e.serverOpts, Store: e.store, Logger: quiet}); err != nil {
		return nil, err
	}
	if e.watcher, err = archive.NewWatcher(ctx, archive.WatcherConfig{URL: e.ns.URL(), Options: e.serverOpts, Store: e.store, Logger: quiet}); err != nil {
		return nil, err
	}
	token, _, err := slipway.IssueToken(ctx, e.store, "bench")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/graphql", graphql.NewHandler(graphql.Config{Store: e.store, Tokens: e.store, Live: e.watcher, Logger: quiet}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.hs.Serve(ln) }()
	e.api = client.New("http://"+ln.Addr().String(), nil).WithToken(token)
	return e, nil
}

// agentOptions are the NATS options of project's agent: its credential
// and inbox prefix, as the agent connects.
func (e *env) agentOptions(project string) ([]nats.Option, error) {
	tok, err := e.creds.Agent(credential.NATS, project, 0)
	if err != nil {
		return nil, err
	}
	return []nats.Option{nats.Token(tok), nats.CustomInboxPrefix(builder.NATSInboxPrefix(project))}, nil
}

func (e *env) close() {
	_ = e.hs.Close()
	e.watcher.Close()
	e.arch.Stop()
	e.ns.Shutdown()
	_ = e.store.Close()
	_ = os.RemoveAll(e.dir)
}

// build is one deployment being written and followed.
type build struct {
	project, id string
	lat         []time.Duration // one per line received
	last        time.Time       // when the last line arrived
	got         int
	err         error
}

// scenario runs builds concurrent builds of lines/builds lines each, with
// one subscriber per build, and measures them.
func (e *env) scenario(ctx context.Context, sub string, builds, lines, rate int) (result, error) {
	per := lines / builds
	bs, err := e.newBuilds(ctx, builds, per)
	if err != nil {
		return result{}, err
	}

	// Lines carry the time they were written, as an offset from base on
	// this process's monotonic clock.
	base := time.Now()
	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	var subsDone sync.WaitGroup
	ready := make(chan struct{}, builds)
	for _, b := range bs {
		subsDone.Add(1)
		go func() {
			defer subsDone.Done()
			b.err = e.follow(subCtx, sub, b, per+1, base, ready)
		}()
	}

	// Publishers, as the agent makes them; line 1 is a warm-up that every
	// subscriber must see before the measured lines are written.
	pubs := make([]*publish.Publisher, builds)
	for i, b := range bs {
		opts, err := e.agentOptions(b.project)
		if err != nil {
			return result{}, err
		}
		p, err := publish.New(ctx, publish.Config{URL: e.ns.URL(), Options: opts, Project: b.project, Deployment: b.id, Stdout: io.Discard,
			SpoolDir: filepath.Join(e.dir, "spool", b.project)})
		if err != nil {
			return result{}, err
		}
		pubs[i] = p
		p.Line("stdout", "warm-up t=0")
	}
	for range builds {
		select {
		case <-ready:
		case <-time.After(time.Minute):
			return result{}, errors.New("subscribers did not see the first line within a minute")
		}
	}

	runtime.GC()
	start := time.Now()
	var writers sync.WaitGroup
	pubDone := make([]time.Time, builds)
	for i := range bs {
		writers.Add(1)
		go func() {
			defer writers.Done()
			writeBuild(pubs[i], per, rate, base)
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := pubs[i].Close(cctx); err != nil {
				log.Printf("close publisher: %v", err)
			}
			pubDone[i] = time.Now()
		}()
	}
	writers.Wait()
	waitCh := make(chan struct{})
	go func() { subsDone.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(5 * time.Minute):
		cancelSubs()
		<-waitCh
		return result{}, errors.New("subscribers did not receive every line within 5 minutes")
	}
	for _, b := range bs {
		if b.err != nil {
			return result{}, b.err
		}
		_ = e.store.FinishDeployment(ctx, b.id, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now())
	}

	return summarize(sub, rate, per, bs, pubDone, start), nil
}

// newBuilds creates builds deployments, each of its own project, building,
// to publish per lines each.
func (e *env) newBuilds(ctx context.Context, builds, per int) ([]*build, error) {
	bs := make([]*build, builds)
	for i := range bs {
		n := e.seq.Add(1)
		b := &build{project: fmt.Sprintf("bench%d", n), lat: make([]time.Duration, 0, per+1)}
		if err := e.store.CreateProject(ctx, &slipway.Project{Name: b.project, Repo: "file:///bench", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
			return nil, err
		}
		d, _, err := e.store.CreateDeployment(ctx, &slipway.Deployment{Project: b.project, Ref: "refs/heads/main", Commit: strings.Repeat("a", 40), Trigger: slipway.TriggerManual})
		if err != nil {
			return nil, err
		}
		b.id = d.ID
		if err := e.store.MarkBuilding(ctx, b.id, time.Now()); err != nil {
			return nil, err
		}
		bs[i] = b
	}
	return bs, nil
}

// summarize returns the result of a scenario of rate whose builds bs (of
// per lines each) were written from start, their publishers closed at
// pubDone.
func summarize(sub string, rate, per int, bs []*build, pubDone []time.Time, start time.Time) result {
	var all []time.Duration
	var lastRecv, lastPub time.Time
	for i, b := range bs {
		all = append(all, b.lat...)
		if b.last.After(lastRecv) {
			lastRecv = b.last
		}
		if pubDone[i].After(lastPub) {
			lastPub = pubDone[i]
		}
	}
	slices.Sort(all)
	builds := len(bs)
	total := per * builds
	return result{
		Subscriber: sub,
		Builds:     builds,
		Rate:       rate,
		Lines:      total,
		Published:  float64(total) / lastPub.Sub(start).Seconds(),
		Received:   float64(total) / lastRecv.Sub(start).Seconds(),
		P50:        all[len(all)/2],
		P99:        all[len(all)*99/100],
	}
}

// writeBuild writes n lines through the publisher's LineWriter in chunks
// of 64 lines, the way the agent copies podman's output from a pipe: as
// fast as it can, or at rate lines/s if rate > 0.
func writeBuild(p *publish.Publisher, n, rate int, base time.Time) {
	w := p.Writer("stdout", "build")
	const chunk = 64
	pad := strings.Repeat("x", 60)
	buf := make([]byte, 0, chunk*128)
	start := time.Now()
	for i := 1; i <= n; i++ {
		if rate > 0 && i%chunk == 1 {
			// Written in bursts of 64 lines, each when it is due.
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		buf = fmt.Appendf(buf, "STEP 3/9: RUN npm ci line %d t=%d %s\n", i, time.Since(base).Nanoseconds(), pad)
		if i%chunk == 0 || i == n {
			_, _ = w.Write(buf)
			buf = buf[:0]
		}
	}
	_ = w.(io.Closer).Close()
}

// follow receives want lines of b's log and records each line's latency.
func (e *env) follow(ctx context.Context, sub string, b *build, want int, base time.Time, ready chan<- struct{}) error {
	errDone := errors.New("done")
	emit := func(l slipway.LogLine) error {
		now := time.Since(base)
		b.got++
		if b.got == 1 {
			ready <- struct{}{}
			return nil
		}
		if i := strings.Index(l.Text, " t="); i >= 0 {
			rest := l.Text[i+3:]
			if j := strings.IndexByte(rest, ' '); j >= 0 {
				rest = rest[:j]
			}
			if at, err := strconv.ParseInt(rest, 10, 64); err == nil {
				b.lat = append(b.lat, now-time.Duration(at))
			}
		}
		if b.got >= want {
			b.last = time.Now()
			return errDone
		}
		return nil
	}
	var err error
	switch sub {
	case "watcher":
		err = e.watcher.FollowLog(ctx, b.id, 1, emit)
	case "websocket":
		err = e.api.FollowLogs(ctx, b.id, 1, emit)
	}
	if errors.Is(err, errDone) || b.got >= want {
		return nil
	}
	if err == nil {
		err = errors.New("the follow ended early")
	}
	return fmt.Errorf("%s follow of %s: got %d of %d lines: %w", sub, b.id, b.got, want, err)
}

// loadAverage is the one-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b) + " ?")[0]
}

func report(rs []result, label, loadBefore, loadAfter string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Log path benchmark\n\n")
	fmt.Fprintf(&b, "`make bench-logs` (bench/cmd/benchlogs), %s, %s, %d CPUs, %s, one-minute load average %s at the start and %s at the end.",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.Version(), loadBefore, loadAfter)
	if label != "" {
		fmt.Fprintf(&b, " %s.", label)
	}
	b.WriteString(" Writer: publish.Publisher's LineWriter (as the agent), chunks of 64 lines of ~110 bytes, as fast as it can. " +
		"**watcher**: archive.Watcher.FollowLog (JetStream ordered consumer) in process; " +
		"**websocket**: the GraphQL subscription deploymentLogLines over graphql-transport-ws (client.FollowLogs against graphql.NewHandler on loopback). " +
		"NATS, the archiver into SQLite, the API and the subscriber share this process. " +
		"Latency: from the write to the subscriber's receipt, same clock. " +
		fmt.Sprintf("Targets: ≥ %d lines/s for one build, p99 < %s. ", targetLinesPerSec, targetP99) +
		"A flood row writes as fast as the writer can: it measures throughput, and its p50/p99 are the backlog's wait, not a line's own latency. " +
		"A paced row writes one build at a steady rate for ten seconds: its p50/p99 are a line's own latency while the path keeps up; " +
		fmt.Sprintf("paced at ≥ %d lines/s, a row meets both targets at once when the subscriber kept up (received ≥ 99 %% of the rate) with p99 < %s.\n\n", targetLinesPerSec, targetP99))
	b.WriteString("| subscriber | scenario | lines | published lines/s | received lines/s | p50 | p99 | target met |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rs {
		scen := "1 build"
		if r.Builds > 1 {
			scen = fmt.Sprintf("%d concurrent builds", r.Builds)
		}
		if r.Rate > 0 {
			scen += fmt.Sprintf(", paced at %d lines/s", r.Rate)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %.0f | %s | %s | %s |\n", r.Subscriber, scen, r.Lines, r.Published, r.Received,
			fmtDur(r.P50), fmtDur(r.P99), r.met())
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
