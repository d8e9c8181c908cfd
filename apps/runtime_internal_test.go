package apps

import (
	"path/filepath"
	"strings"
	"testing"
)

// A data directory deep in the file system still gets a run root podman
// accepts, the same one for every Runtime on it; a short one keeps Dir/run.
func TestRunRootFitsPodman(t *testing.T) {
	short := "/srv/slipway-data/apps"
	if got := runRootFor(short); got != filepath.Join(short, "run") {
		t.Errorf("runRootFor(%s) = %s, want %s/run", short, got, short)
	}
	long := "/home/runner/work/slipway/slipway/a-long-checkout/slipway-data/apps"
	got := runRootFor(long)
	if len(got) > MaxRunRoot || !strings.HasPrefix(got, "/run/") {
		t.Errorf("runRootFor(long) = %s (%d characters), want under /run, at most %d", got, len(got), MaxRunRoot)
	}
	if again := runRootFor(long); again != got {
		t.Errorf("runRootFor is not stable: %s, then %s", got, again)
	}
	if other := runRootFor(long + "2"); other == got {
		t.Errorf("two data directories share the run root %s", got)
	}
}
