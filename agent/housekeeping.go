package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/internal/atomicfile"
)

func (a *Activities) pins() []string {
	var refs []string
	b, err := os.ReadFile(a.layout.Pins)
	if err == nil {
		_ = json.Unmarshal(b, &refs)
	}
	return refs
}

func (a *Activities) savePins(refs []string) error {
	b, _ := json.Marshal(refs)
	return atomicfile.Write(a.layout.Pins, b, 0o644)
}

// housekeep runs after every build. It pins pushed (the image just pushed,
// if any), removes this project's images that are not among the last
// KeepImages pinned ones, and when the volume's filesystem is fuller than
// ResetThreshold it resets the builder's storage and clears the temp and work
// directories; it also runs git's automatic maintenance on the mirror. The
// volume is only a cache: the next build is colder, never wrong. Failures
// are reported, never fatal to the build.
//
// Only what the deployment's log must show runs before it returns: the
// pins, and on a volume past the threshold the image removal and the
// reset. Otherwise the removal of old images and git's maintenance (a few
// buildah and git processes, 0.2–0.5 s) run after the activity has
// returned, so the deployment ends without waiting for them; the agent
// does not exit, and its next activity does not start, until they are
// done (afterJob). They report to the agent's own log.
func (a *Activities) housekeep(ctx context.Context, j *job, project, pushed string) {
	pins := a.pins()
	if pushed != "" {
		pins = slices.DeleteFunc(pins, func(r string) bool { return r == pushed })
		pins = append(pins, pushed)
		if len(pins) > a.cfg.KeepImages {
			pins = pins[len(pins)-a.cfg.KeepImages:]
		}
		if err := a.savePins(pins); err != nil {
			a.cfg.Logger.Warn("housekeeping: save pinned images", "error", err)
		}
	}
	used, err := fsUsage(a.layout.Root)
	if err != nil {
		a.cfg.Logger.Warn("housekeeping: volume usage", "error", err)
	} else if used > a.cfg.ResetThreshold {
		// Old images first: their space may be enough.
		a.removeOldImages(ctx, j, project, pins)
		a.maintainMirror(ctx)
		a.resetIfFull(ctx, j)
		return
	}
	a.afterJob(func(ctx context.Context) {
		a.removeOldImages(ctx, nil, project, pins)
		a.maintainMirror(ctx)
	})
}

// maintainMirror runs git's automatic maintenance on the mirror, which
// fetches leave out (it is not needed to build).
func (a *Activities) maintainMirror(ctx context.Context) {
	if err := (&gitmirror.Mirror{Dir: a.layout.Mirror}).Maintain(ctx); err != nil {
		a.cfg.Logger.Warn("housekeeping: git maintenance of the mirror", "error", err)
	}
}

// removeOldImages removes the project's images that are not pinned. It
// reports to the deployment's log through j, or to the agent's log when j
// is nil.
func (a *Activities) removeOldImages(ctx context.Context, j *job, project string, pins []string) {
	// The project's images are those in the repositories of its pinned
	// images (the deployments' images carry no labels in this storage: the
	// labels are put on in the registry). Base images and other names
	// stay.
	repos := map[string]bool{}
	for _, r := range pins {
		repos[repository(r)] = true
	}
	imgs, err := a.builder.Images(ctx)
	if err != nil {
		a.cfg.Logger.Warn("housekeeping: list images", "error", err)
	}
	var remove []string
	for _, img := range imgs {
		mine, pinned := false, false
		for _, n := range img.Names {
			mine = mine || repos[repository(n)]
			pinned = pinned || slices.Contains(pins, n)
		}
		if mine && !pinned {
			remove = append(remove, img.ID)
		}
	}
	if len(remove) == 0 {
		return
	}
	if err := a.builder.RemoveImages(ctx, remove...); err != nil {
		a.cfg.Logger.Warn("housekeeping: remove old images", "error", err)
		return
	}
	msg := fmt.Sprintf("removed %d old image(s), keeping the last %d successful builds", len(remove), a.cfg.KeepImages)
	if j != nil {
		j.line("housekeeping", "%s", msg)
	} else {
		a.cfg.Logger.Info("housekeeping: "+msg, "project", project)
	}
}

// resetIfFull resets the builder's storage and clears the work directories
// when the volume is fuller than ResetThreshold.
func (a *Activities) resetIfFull(ctx context.Context, j *job) {
	used, err := fsUsage(a.layout.Root)
	if err != nil {
		a.cfg.Logger.Warn("housekeeping: volume usage", "error", err)
		return
	}
	if used <= a.cfg.ResetThreshold {
		return
	}
	j.line("housekeeping", "volume %.0f%% full (threshold %.0f%%): resetting the build cache", used*100, a.cfg.ResetThreshold*100)
	if err := a.builder.Reset(ctx); err != nil {
		a.cfg.Logger.Warn("housekeeping: reset the builder's storage", "error", err)
	}
	entries, _ := os.ReadDir(a.layout.Work)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(a.layout.Work, e.Name()))
	}
	// The reset removed the images the records name.
	a.forgetImages()
}

// forgetImages drops the records that name images of the builder's
// storage (pins, reuse, steps), when those images are gone.
func (a *Activities) forgetImages() {
	_ = os.Remove(a.layout.Pins)
	_ = os.RemoveAll(a.layout.Inputs)
	a.forgetSteps(nil)
}

// migrateVolume moves a volume an older agent built on with podman 4.3
// (whose layer cache buildah does not use) to buildah: it forgets the
// records naming podman's images (the next build runs in full, once) and
// removes podman's storage (Layout.OldStorage) in the background (buildah
// keeps its own in Layout.Builder); the agent does not exit
// before the removal ended or ctx did (a later start resumes it). It runs
// once per volume, at the agent's start.
func (a *Activities) migrateVolume(ctx context.Context) {
	old, trash := a.layout.OldStorage, a.layout.OldStorageTrash
	if _, err := os.Lstat(old); err == nil {
		// A renamed directory keeps no one's mounts: unmount first.
		if os.Geteuid() == 0 {
			_ = buildah.UnmountUnder(old)
		}
		if err := os.Rename(old, trash); err != nil {
			a.cfg.Logger.Warn("volume: move away podman's storage", "error", err)
			return
		}
		a.forgetImages()
		// podman 4.3's blob-info cache (buildah's is a new file beside it).
		_ = os.Remove(filepath.Join(a.layout.Home, ".local", "share", "containers", "cache", "blob-info-cache-v1.boltdb"))
		a.cfg.Logger.Info("volume: moving from podman 4.3 to " + a.builder.String() + ": the next build runs in full once; removing podman's storage")
	}
	if _, err := os.Lstat(trash); err != nil {
		return
	}
	a.migrating.Add(1)
	go func() {
		defer a.migrating.Done()
		start := time.Now()
		if err := a.builder.Remove(ctx, trash); err != nil {
			a.cfg.Logger.Warn("volume: remove podman's storage", "error", err)
			return
		}
		a.cfg.Logger.Info("volume: removed podman's storage", "in", time.Since(start).Round(time.Millisecond))
	}()
}

// afterJob runs fn after the current activity has returned, in the
// background. Until fn is done the agent counts as busy (it does not exit
// idle) and the next activity waits for it (waitAfterJob), so
// housekeeping never runs beside a build. fn gets a context of its own
// (the activity's ends with it), bounded by afterJobTimeout and canceled
// when the agent stops (a.background).
func (a *Activities) afterJob(fn func(ctx context.Context)) {
	a.tracker.begin()
	a.afterJobs.Add(1)
	go func() {
		defer a.afterJobs.Done()
		defer a.tracker.end(time.Now())
		parent := a.background
		if parent == nil {
			parent = context.Background()
		}
		ctx, cancel := context.WithTimeout(parent, afterJobTimeout)
		defer cancel()
		fn(ctx)
	}()
}

// afterJobTimeout bounds the background housekeeping of one build.
const afterJobTimeout = 5 * time.Minute

// waitAfterJob waits until the background work of earlier activities is
// done.
func (a *Activities) waitAfterJob() { a.afterJobs.Wait() }

// fsUsage is the fraction of the filesystem holding dir that is in use, as
// df computes it.
func fsUsage(dir string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	used := float64(st.Blocks - st.Bfree)
	total := used + float64(st.Bavail)
	if total == 0 {
		return 0, nil
	}
	return used / total, nil
}

// repository is ref without its tag or digest: "host:5000/app:abc" →
// "host:5000/app".
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}
