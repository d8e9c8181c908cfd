package apps

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTailLog: partial lines are joined, only the last n come back, and a
// line cut by the start of the window read is dropped.
func TestTailLog(t *testing.T) {
	dir := t.TempDir()
	log := strings.Join([]string{
		"2026-12-06T17:00:00.000000001+00:00 stdout F first",
		"2026-12-06T17:00:00.000000002+00:00 stderr P a long ",
		"2026-12-06T17:00:00.000000003+00:00 stderr F line",
		"2026-12-06T17:00:00.000000004+00:00 stdout F ",
		"not a log line",
		"2026-12-06T17:00:00.000000005+00:00 stdout F last",
	}, "\n") + "\n"
	path := filepath.Join(dir, "ctr.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    int
		want []string
	}{
		{10, []string{"first", "a long line", "", "last"}},
		{2, []string{"", "last"}},
	} {
		if got, err := tailLog(path, c.n); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("tailLog(%d) = %q, %v; want %q", c.n, got, err, c.want)
		}
	}
	// Longer than the window: the first line read is cut, so dropped.
	long := strings.Repeat("2026-12-06T17:00:00.000000001+00:00 stdout F "+strings.Repeat("x", 100)+"\n", tailLogBytes/100+10)
	if err := os.WriteFile(path, []byte(long+"2026-12-06T17:00:00.000000002+00:00 stdout F end\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := tailLog(path, 1<<20)
	if err != nil || len(got) == 0 || got[len(got)-1] != "end" || got[0] != strings.Repeat("x", 100) {
		t.Errorf("tailLog of a long file: %d lines, first %.20q, %v; want whole lines ending in end", len(got), got, err)
	}
	if got, err := tailLog(filepath.Join(dir, "missing"), 5); err != nil || got != nil {
		t.Errorf("tailLog of a missing file = %q, %v; want nothing", got, err)
	}
}
