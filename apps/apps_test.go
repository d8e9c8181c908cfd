package apps

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/buildah/baseimage"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// images are the test apps, pushed to a real embedded registry that asks
// for a credential (testenv.RegistryAuthFile has it).
type images struct {
	// app serves on $PORT (busybox httpd, EXPOSE 8000): / says "ok",
	// /cgi-bin/env prints GREETING and PORT from its environment.
	app string
	// bad prints a line to each stream, one naming $DATABASE_URL, and
	// exits 3.
	bad string
	// noPort is app without EXPOSE.
	noPort string
	// silent prints a line and never listens.
	silent string
}

// appScript is the app's command: it writes its web root on the
// read-only root file system's tmpfs /tmp and runs httpd; as PID 1 it
// exits on SIGTERM (the trap), so Stop is quick.
const appScript = `mkdir -p /tmp/www/cgi-bin
echo ok > /tmp/www/index.html
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "greeting=$GREETING port=$PORT"\n' > /tmp/www/cgi-bin/env
chmod +x /tmp/www/cgi-bin/env
echo "app listening on $PORT"
echo "greeting is $GREETING"
trap 'exit 0' TERM
httpd -f -p "$PORT" -h /tmp/www &
wait`

const silentScript = `echo "waiting for a database that never answers"
sleep 3600`

const badScript = `echo "booting bad app"
echo "fatal: cannot reach the database at $DATABASE_URL" >&2
exit 3`

func testImages(t *testing.T) images {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the app runtime's tests run as root (real podman, cgroups)")
	}
	b := testenv.Builder(t)
	host := testenv.Registry(t)
	tar := testenv.BusyboxRootfsTar(t)
	mk := func(name, script string, expose bool) string {
		cmd, _ := json.Marshal([]string{"/bin/sh", "-c", script})
		changes := append([]string{"CMD " + string(cmd)}, baseimage.Changes[0])
		if expose {
			changes = append(changes, "EXPOSE 8000")
		}
		ref := host + "/" + name + ":1"
		if err := b.Import(t.Context(), tar, ref, changes...); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(t.Context(), ref, false, nil); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	return images{app: mk("demo", appScript, true), bad: mk("bad", badScript, true), noPort: mk("noport", appScript, false),
		silent: mk("silent", silentScript, true)}
}

// newRuntime returns a Runtime on a temporary directory; cleanup removes
// its containers, stops it and unmounts what podman left mounted.
func newRuntime(t *testing.T, dir string) *Runtime {
	t.Helper()
	return newRuntimeWith(t, Config{Dir: dir})
}

// newRuntimeWith is newRuntime with cfg, whose registry and time fields
// are the tests'.
func newRuntimeWith(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	cfg.AuthFile, cfg.RegistryInsecure = testenv.RegistryAuthFile(), true
	cfg.HealthTimeout, cfg.StopTimeout = 15*time.Second, 2*time.Second
	r, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// cleanDir returns a directory for Runtimes whose containers are removed
// and storage unmounted at the end of the test.
func cleanDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r, err := New(ctx, Config{Dir: dir})
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer r.Close()
		insts, _ := r.Reconcile(ctx)
		for _, inst := range insts {
			if err := r.Remove(ctx, inst); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		// Not `podman system reset`: it would also remove the host's
		// podman networks.
		if _, err := r.podman(ctx, "rmi", "--all", "--force"); err != nil {
			t.Logf("cleanup: %v", err)
		}
		if err := buildah.UnmountUnder(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return dir
}

// get asks url with a client timeout and returns the status and body.
func get(url string, timeout time.Duration) (int, string, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustGet(t *testing.T, inst *Instance, path string) string {
	t.Helper()
	code, body, err := get("http://"+inst.Addr()+path, 5*time.Second)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s on %s = %d, %v; want 200", path, inst.Name, code, err)
	}
	return body
}

func inspectField(t *testing.T, r *Runtime, name, format string) string {
	t.Helper()
	out, err := r.podman(t.Context(), "inspect", "--format", format, name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func wantState(t *testing.T, r *Runtime, inst *Instance, want State) {
	t.Helper()
	got, err := r.State(t.Context(), inst)
	if err != nil || got != want {
		t.Fatalf("State(%s) = %q, %v; want %q", inst.Name, got, err, want)
	}
}

// processGone says whether pid is no longer a live process.
func processGone(pid string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	return errors.Is(err, os.ErrNotExist) || (err == nil && strings.Contains(string(b), ") Z "))
}

func TestMain(m *testing.M) {
	for _, tool := range []string{"podman", "runc", "conmon"} {
		if _, err := exec.LookPath(tool); err != nil {
			println("apps tests: " + tool + " not found: apt-get install podman runc conmon")
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
