// Command benchruntime measures issue 17's item 3 (`make bench-runtime`):
// how fast a sleeping app wakes and what the gateway and the sleeping apps
// cost, side by side in one run, for two sample apps of different shapes
// (busybox httpd, and bench/app-go, a Go service):
//
//   - frozen → first byte through the gateway (target p50 ≤ 30 ms);
//   - stopped → first byte through the gateway, beside `podman start` +
//     first byte by hand on an identical container, interleaved (target
//     ratio ≤ 0.6);
//   - a warm app through the gateway against its published port asked
//     directly, at several concurrencies (targets: ≤ 1 ms more at p50,
//     ≥ 0.8× the requests/s);
//   - many sleeping apps, half frozen and half stopped (targets: no CPU,
//     the control plane's resident memory grows < 100 MB).
//
// The app runtime (apps.Runtime, on its own storage in a new work
// directory, with its podman API service), the gateway (gateway.Gateway on
// a loopback listener) and the wiring `slipway server` has between them
// (host.go) all run in this process, which is the control plane whose CPU
// and memory are counted. It needs root, podman, runc, busybox-static and
// the Go toolchain (with bench/app-go's modules cached or the module
// proxy). It prints the table and writes it to -out.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/gateway"
)

// Config is the benchmark's configuration; flags map onto it.
type Config struct {
	// Rounds is how many times each wake is measured per app.
	Rounds int
	// Concurrencies are the client concurrencies of the warm comparison.
	Concurrencies []int
	// OverheadRounds is how many rounds each side of the warm comparison
	// runs, alternating; RoundTime how long each round lasts.
	OverheadRounds int
	RoundTime      time.Duration
	// SleepingApps is how many sleeping apps are made; Workers how many
	// are started at once; Window how long their CPU time is counted.
	SleepingApps, Workers int
	Window                time.Duration
	// Network is the apps' network mode (apps.Config.Network).
	Network apps.Network
	// NoPrime is apps.Config.NoPrime.
	NoPrime bool
	// PublishedPort makes the gateway dial apps on their published port
	// (through its forwarder), as it did before apps.Runtime.DialContext.
	PublishedPort bool
	// RepoRoot is the Slipway repository (where go.mod is).
	RepoRoot string
	// Out receives the Markdown report; empty: printed only.
	Out string
	// Label is printed with the table.
	Label string
	// Apps are the sample apps to measure (image.Name); default both.
	Apps []string
	// CPUProfile receives a CPU profile of the warm comparisons.
	CPUProfile string
	// IdleProfile receives a CPU profile of the sleeping apps' window.
	IdleProfile string
	// InProcess sends the warm comparisons' requests from this process
	// (beside the gateway) instead of from a child process.
	InProcess bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == loadCommand {
		if err := runLoad(os.Args[2:]); err != nil {
			log.Fatalf("benchruntime load: %v", err)
		}
		return
	}
	var cfg Config
	var conc string
	flag.IntVar(&cfg.Rounds, "rounds", 15, "wakes measured per app and depth")
	flag.StringVar(&conc, "concurrency", "1,8,32", "client concurrencies of the warm comparison")
	flag.IntVar(&cfg.OverheadRounds, "overhead-rounds", 6, "rounds per side of the warm comparison")
	flag.DurationVar(&cfg.RoundTime, "round-time", 500*time.Millisecond, "length of one round of the warm comparison")
	flag.IntVar(&cfg.SleepingApps, "sleeping", 200, "sleeping apps to make (half frozen, half stopped); 0: skip")
	flag.IntVar(&cfg.Workers, "workers", 4, "apps started at once while making the sleeping ones")
	flag.DurationVar(&cfg.Window, "window", 10*time.Second, "how long the sleeping apps' CPU time is counted")
	network := flag.String("network", string(apps.NetworkIsolated), "apps' network: isolated or bridge")
	flag.BoolVar(&cfg.NoPrime, "no-prime", false, "stopped apps keep no process (apps.Config.NoPrime): a slower wake")
	flag.BoolVar(&cfg.PublishedPort, "published-port", false, "the gateway dials apps' published ports instead of entering their network namespace")
	flag.StringVar(&cfg.Out, "out", "bench/results/RUNTIME.md", "where to write the Markdown report (empty: nowhere)")
	flag.StringVar(&cfg.Label, "label", "", "a label for this run, printed with the table")
	appList := flag.String("apps", "busybox-httpd,go-notes", "sample apps to measure")
	flag.BoolVar(&cfg.InProcess, "in-process-client", false, "send the warm comparisons' requests from this process, beside the gateway, not from a child process")
	flag.StringVar(&cfg.IdleProfile, "idle-profile", "", "write a CPU profile of the sleeping apps' window to this file")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the warm comparisons to this file")
	flag.Parse()
	cfg.Network = apps.Network(*network)
	cfg.Apps = strings.Split(*appList, ",")
	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("benchruntime: -concurrency: %q is not a positive number", f)
		}
		cfg.Concurrencies = append(cfg.Concurrencies, n)
	}
	wd, err := os.Getwd()
	if err != nil {
		log.Fatalf("benchruntime: %v", err)
	}
	cfg.RepoRoot = wd
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("benchruntime: %v", err)
	}
}

// env is the benchmark's app runtime, gateway and clients.
type env struct {
	dir    string
	rt     *apps.Runtime
	host   *host
	gw     *gateway.Gateway
	srv    *gateway.Server
	gwAddr string
	// fresh and direct open a new connection for every request.
	fresh, direct *http.Client
	// inProcess is Config.InProcess; idleProfile Config.IdleProfile.
	inProcess   bool
	idleProfile string
	// svcPID is the runtime's podman API service, once found.
	svcPID int
}

func run(ctx context.Context, cfg Config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run it as root: the app runtime runs apps as root podman containers")
	}
	if _, err := os.Stat(filepath.Join(cfg.RepoRoot, "bench", "app-go", "go.mod")); err != nil {
		return fmt.Errorf("run it from the repository's root (make bench-runtime): %w", err)
	}
	e, err := newEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.close()
	loadBefore := loadAverage()
	fmt.Println("making the images (busybox httpd, bench/app-go)...")
	imgs, err := makeImages(ctx, e.dir, cfg.RepoRoot)
	if err != nil {
		return err
	}
	var r report
	r.cfg = cfg
	imgs = slices.DeleteFunc(imgs, func(img image) bool { return !slices.Contains(cfg.Apps, img.Name) })
	if len(imgs) == 0 {
		return fmt.Errorf("-apps %s: no such sample app (busybox-httpd, go-notes)", strings.Join(cfg.Apps, ","))
	}
	if cfg.CPUProfile != "" {
		stop, err := startProfile(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	for _, img := range imgs {
		fmt.Printf("%s: wakes (%d rounds)...\n", img.Name, cfg.Rounds)
		w, err := e.measureWakes(ctx, img, cfg.Rounds)
		if err != nil {
			return err
		}
		r.wakes = append(r.wakes, w)
		fmt.Printf("%s: warm, direct against gateway...\n", img.Name)
		o, err := e.measureOverhead(ctx, img, cfg.Concurrencies, cfg.OverheadRounds, cfg.RoundTime)
		if err != nil {
			return err
		}
		r.overhead = append(r.overhead, o...)
	}
	if cfg.SleepingApps > 0 {
		fmt.Printf("%d sleeping apps...\n", cfg.SleepingApps)
		s, err := e.measureSleeping(ctx, imgs, cfg.SleepingApps, cfg.Workers, cfg.Window)
		if err != nil {
			return err
		}
		r.sleeping = &s
	}
	r.loadBefore, r.loadAfter = loadBefore, loadAverage()
	text := r.markdown()
	fmt.Println()
	fmt.Println(text)
	if cfg.Out != "" {
		if err := os.WriteFile(filepath.Join(cfg.RepoRoot, cfg.Out), []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Printf("written to %s\n", cfg.Out)
	}
	return nil
}

// newEnv starts the app runtime on a new work directory and the gateway.
func newEnv(ctx context.Context, cfg Config) (*env, error) {
	dir, err := os.MkdirTemp("/tmp", "sbr-")
	if err != nil {
		return nil, err
	}
	if err := checkRunRoot(dir); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := apps.New(ctx, apps.Config{Dir: dir, Network: cfg.Network, NoPrime: cfg.NoPrime,
		StopTimeout: 5 * time.Second, Logger: quiet})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{dir: dir, rt: rt, host: newHost(rt), fresh: freshClient(), direct: freshClient(), inProcess: cfg.InProcess, idleProfile: cfg.IdleProfile}
	e.direct.Timeout = 2 * time.Second
	gcfg := gateway.Config{Apps: e.host, Dial: rt.DialContext, Logger: quiet}
	if cfg.PublishedPort {
		gcfg.Dial = nil
	}
	e.gw, err = gateway.New(gcfg)
	if err != nil {
		e.close()
		return nil, err
	}
	e.srv, err = gateway.Listen("127.0.0.1:0", e.gw, quiet)
	if err != nil {
		e.close()
		return nil, err
	}
	e.gwAddr = e.srv.Addr().String()
	return e, nil
}

// startApp starts an app of img as project's release and serves it.
func (e *env) startApp(ctx context.Context, img image, project, release string) (*app, error) {
	inst, err := e.rt.Start(ctx, apps.Spec{Project: project, Release: release, Image: img.Ref, Port: img.Port,
		HealthPath: img.Path, MemoryBytes: 128 << 20, CPUs: 1})
	if err != nil {
		return nil, err
	}
	return e.host.add(inst), nil
}

// close removes every app container and image, stops the runtime and the
// gateway, and removes the work directory.
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if e.srv != nil {
		_ = e.srv.Close(ctx)
	}
	if insts, err := e.rt.Reconcile(ctx); err == nil {
		for _, inst := range insts {
			if err := e.rt.Remove(ctx, inst); err != nil {
				fmt.Fprintf(os.Stderr, "clean-up: %v\n", err)
			}
		}
	}
	if out, err := podmanAt(ctx, e.dir, "rmi", "--all", "--force"); err != nil {
		fmt.Fprintf(os.Stderr, "clean-up: %v: %s\n", err, out)
	}
	_ = e.rt.Close()
	if err := buildah.UnmountUnder(e.dir); err != nil {
		fmt.Fprintf(os.Stderr, "clean-up: %v\n", err)
	}
	_ = os.RemoveAll(e.dir)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// startProfile starts a CPU profile into path; the function returned ends it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
