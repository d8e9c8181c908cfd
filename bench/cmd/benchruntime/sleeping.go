package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/apps"
)

// sleepResult is what many sleeping apps cost.
type sleepResult struct {
	Apps, Frozen, Stopped int
	// Made is how long it took to start them all.
	Made time.Duration
	// RSSBefore and RSSAfter are this process's resident set (it hosts
	// the app runtime and the gateway) before the apps were made and once
	// they all sleep, after a GC; ServiceBefore/After that of the
	// runtime's podman API service.
	RSSBefore, RSSAfter         int64
	ServiceBefore, ServiceAfter int64
	// Window is how long CPU time was counted; ControlCPU is the CPU time
	// this process and the podman API service used meanwhile, AppsCPU
	// that of every other process of the runtime (conmon, the apps'
	// processes, their network helpers), Procs how many those were, and
	// AppsRSS their resident memory.
	Window              time.Duration
	ControlCPU, AppsCPU time.Duration
	// SelfCPU and ServiceCPU are ControlCPU's parts.
	SelfCPU, ServiceCPU time.Duration
	// BaseSelfCPU and BaseServiceCPU are the same over a window before
	// any of the apps was made: what the control plane costs idle.
	BaseSelfCPU, BaseServiceCPU time.Duration
	Procs                       int
	AppsRSS                     int64
}

// measureSleeping starts n apps (the images in turn), freezes half of
// them and stops the others, then counts what they cost over window.
func (e *env) measureSleeping(ctx context.Context, imgs []image, n, workers int, window time.Duration) (sleepResult, error) {
	res := sleepResult{Apps: n, Window: window}
	res.RSSBefore, res.ServiceBefore = e.controlRSS()
	self0, svc0 := e.controlCPU()
	time.Sleep(window)
	self1, svc1 := e.controlCPU()
	res.BaseSelfCPU, res.BaseServiceCPU = self1-self0, svc1-svc0
	t0 := time.Now()
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if err := e.sleepingApp(ctx, imgs[i%len(imgs)], i, &res, &mu); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	res.Made = time.Since(t0)
	time.Sleep(2 * time.Second) // podman's clean-ups after the stops
	res.RSSAfter, res.ServiceAfter = e.controlRSS()

	// The scans of /proc are not counted: the control plane's times are
	// read after the first (and the collection of its garbage, which
	// would run in the window otherwise) and before the second.
	apps0, _, _ := e.appsCPU()
	runtime.GC()
	if e.idleProfile != "" {
		stop, err := startProfile(e.idleProfile)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	self0, svc0 = e.controlCPU()
	time.Sleep(window)
	self1, svc1 = e.controlCPU()
	apps1, procs, rss := e.appsCPU()
	res.SelfCPU, res.ServiceCPU = self1-self0, svc1-svc0
	res.ControlCPU = res.SelfCPU + res.ServiceCPU
	res.AppsCPU, res.Procs, res.AppsRSS = apps1-apps0, procs, rss
	return res, nil
}

// sleepingApp starts app i and puts it to sleep: even ones frozen, odd
// ones stopped.
func (e *env) sleepingApp(ctx context.Context, img image, i int, res *sleepResult, mu *sync.Mutex) error {
	a, err := e.startApp(ctx, img, fmt.Sprintf("idle-%03d", i), "r1")
	if err != nil {
		return err
	}
	depth := apps.Frozen
	if i%2 == 1 {
		depth = apps.Stopped
	}
	if err := a.sleep(ctx, e.gw, depth); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if depth == apps.Frozen {
		res.Frozen++
	} else {
		res.Stopped++
	}
	return nil
}

func cmpOr(a, b string) string { return cmp.Or(a, b) }

// controlRSS returns, after a GC, this process's resident set and the
// podman API service's, in bytes.
func (e *env) controlRSS() (self, svc int64) {
	runtime.GC()
	debug.FreeOSMemory()
	self = procRSS(os.Getpid())
	if pid := e.servicePID(); pid > 0 {
		svc = procRSS(pid)
	}
	return self, svc
}

// servicePID finds the runtime's podman API service: this process's child
// running `podman ... system service`.
func (e *env) servicePID() int {
	if e.svcPID > 0 && ppid(e.svcPID) == os.Getpid() {
		return e.svcPID
	}
	for _, pid := range pids() {
		if ppid(pid) == os.Getpid() && bytes.Contains(cmdline(pid), []byte("system\x00service")) {
			e.svcPID = pid
			return pid
		}
	}
	return 0
}

// controlCPU returns the CPU time used so far by this process and by
// the podman API service.
func (e *env) controlCPU() (self, svc time.Duration) {
	if pid := e.servicePID(); pid > 0 {
		svc = procCPU(pid)
	}
	return procCPU(os.Getpid()), svc // last: the scan above is not counted
}

// appsCPU returns the CPU time used so far by every other process of the
// runtime: those whose command line names the runtime's directory
// (conmon) and their descendants (the apps, their network helpers), with
// how many there are and their resident memory.
func (e *env) appsCPU() (cpu time.Duration, procs int, rss int64) {
	svcPID := e.servicePID()
	all := pids()
	parent := map[int]int{}
	for _, pid := range all {
		parent[pid] = ppid(pid)
	}
	ours := map[int]bool{}
	for _, pid := range all {
		if pid != os.Getpid() && pid != svcPID && bytes.Contains(cmdline(pid), []byte(e.dir)) {
			ours[pid] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, pid := range all {
			if !ours[pid] && ours[parent[pid]] {
				ours[pid], changed = true, true
			}
		}
	}
	for pid := range ours {
		cpu += procCPU(pid)
		rss += procRSS(pid)
	}
	return cpu, len(ours), rss
}

func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) []byte {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return b
}

// statFields returns the fields of /proc/pid/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// procCPU returns the time pid's threads have spent on a CPU, to the
// nanosecond (the scheduler's own count, /proc/<pid>/task/*/schedstat,
// rather than utime and stime, which are sampled at each 10 ms tick and
// charge a whole tick to a process that ran a microsecond then).
func procCPU(pid int) time.Duration {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// procRSS returns pid's resident set in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
