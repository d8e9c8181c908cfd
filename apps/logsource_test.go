package apps

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLogSource: OnStart is called before an app's container starts,
// LogSource names its k8s-file log, bounded by LogMaxBytes, and masks
// the values of its Spec.Env, which the file itself holds as written.
func TestLogSource(t *testing.T) {
	imgs := testImages(t)
	var mu sync.Mutex
	var started []string
	r := newRuntimeWith(t, Config{Dir: cleanDir(t), LogMaxBytes: 1 << 20, OnStart: func(inst *Instance) {
		mu.Lock()
		defer mu.Unlock()
		started = append(started, inst.Name)
	}})
	inst, err := r.Start(t.Context(), Spec{Project: "logs", Release: "r1", Image: imgs.app, Env: []string{"GREETING=" + secretValue}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(started) != 1 || started[0] != inst.Name {
		t.Errorf("OnStart called for %q, want once for %s", started, inst.Name)
	}
	mu.Unlock()
	if size := inspectField(t, r, inst.Name, "{{.HostConfig.LogConfig.Size}}"); size == "" || size == "0B" {
		t.Errorf("log size limit %q, want 1 MiB", size)
	}
	path, mask, err := r.LogSource(t.Context(), inst)
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(raw, "greeting is"); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		raw = string(b)
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want the app's greeting line", path, raw)
		}
	}
	var line string
	for l := range strings.SplitSeq(raw, "\n") {
		if strings.Contains(l, "greeting is") {
			line = l
		}
	}
	if !strings.Contains(line, secretValue) {
		t.Fatalf("the log file's line %q does not hold the value; the test app changed?", line)
	}
	if masked := mask(line); strings.Contains(masked, secretValue) || !strings.Contains(masked, "greeting is") {
		t.Errorf("mask(%q) = %q, want the value hidden, the rest kept", line, masked)
	}
}
