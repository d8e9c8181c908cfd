package apps

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// appDialer dials apps.
var appDialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// netTarget is where a running app listens inside its own network
// namespace: the namespace of its first process, and its port.
type netTarget struct {
	pid, port int
	// started is the process's start time (/proc/<pid>/stat), so that a
	// pid used again by another process is not taken for the app's.
	started string
}

// DialContext connects to the app published at addr (an Instance's Addr,
// 127.0.0.1:<HostPort>) inside the app's own network namespace, at
// 127.0.0.1:<Port>: no port forwarder (rootlessport, a firewall rule)
// sits between the caller and the app. The gateway dials apps with it.
// An address the runtime does not know as a running app's (one adopted
// and not looked at yet, or anything else) is dialled as it is, and so
// is one whose namespace is gone. Its errors wrap the dial's (a refused
// connection is syscall.ECONNREFUSED).
func (r *Runtime) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if v, ok := r.nets.Load(addr); ok && (network == "tcp" || network == "tcp4") {
		t := v.(netTarget)
		c, err := dialIn(ctx, t)
		if err == nil || !errNoNamespace(err) {
			return c, err
		}
		r.nets.CompareAndDelete(addr, v) // the process is gone: forget it
	}
	return appDialer.DialContext(ctx, network, addr)
}

// setNet records that inst runs with its first process pid; forgetNet
// that it does not run any more.
func (r *Runtime) setNet(inst *Instance, pid int) {
	if pid <= 0 || inst.HostPort <= 0 || inst.Port <= 0 {
		return
	}
	if started, err := startTime(pid); err == nil {
		r.nets.Store(inst.Addr(), netTarget{pid: pid, port: inst.Port, started: started})
	}
}

// errNamespace marks the failure to enter a namespace (as opposed to a
// failed connection inside it).
type errNamespace struct{ err error }

func (e *errNamespace) Error() string { return "enter the app's network namespace: " + e.err.Error() }
func (e *errNamespace) Unwrap() error { return e.err }

func errNoNamespace(err error) bool {
	_, ok := err.(*errNamespace)
	return ok
}

// dialIn connects to 127.0.0.1:<t.port> in the network namespace of
// process t.pid, if that is still the process started at t.started. The socket is made on an OS thread that enters the namespace and
// returns to this process's own before it runs anything else; a socket
// stays in the namespace it was made in.
func dialIn(ctx context.Context, t netTarget) (net.Conn, error) {
	ns, err := os.Open("/proc/" + strconv.Itoa(t.pid) + "/ns/net")
	if err != nil {
		return nil, &errNamespace{err}
	}
	defer ns.Close()
	// Checked after the open: the namespace opened is that process's.
	if started, err := startTime(t.pid); err != nil || started != t.started {
		return nil, &errNamespace{fmt.Errorf("process %d is not the app's any more", t.pid)}
	}
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, &errNamespace{err}}
			return
		}
		defer own.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, &errNamespace{err}}
			return
		}
		c, err := appDialer.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(t.port))
		if berr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); berr != nil {
			// This thread cannot go back: it stays locked, and Go ends
			// it when this goroutine returns.
			if c != nil {
				c.Close()
			}
			done <- result{nil, fmt.Errorf("leave the app's network namespace: %w", berr)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{c, err}
	}()
	res := <-done
	return res.c, res.err
}
