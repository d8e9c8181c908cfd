package main

import (
	"strings"
	"testing"
)

// Issue 14's targets are checked per app, against that app's medians.
func TestAppTargets(t *testing.T) {
	r := &results{Runs: 1, Systems: []string{"local", "local-old", "slipway", "ci"}, Scenarios: []string{"nochange", "source", "deps"},
		Apps: []appInfo{{Name: "node"}, {Name: "go"}}}
	add := func(app, sc, sys string, ms int64) {
		r.Samples = append(r.Samples, sample{App: app, Scenario: sc, System: sys, TotalMs: ms, Run: 1})
	}
	// node meets everything; go meets nothing.
	add("node", "nochange", "slipway", 900)
	add("node", "source", "local", 10000)
	add("node", "source", "slipway", 8000)
	add("node", "source", "ci", 32000)
	add("node", "deps", "local", 20000)
	add("node", "deps", "slipway", 20000)
	add("go", "nochange", "slipway", 1001)
	add("go", "source", "local", 10000)
	add("go", "source", "slipway", 8100)
	add("go", "source", "ci", 32000)
	add("go", "deps", "local", 20000)
	add("go", "deps", "slipway", 20100)
	r.Samples[len(r.Samples)-1].Retried = "buildah build x: exit status 1"

	for app, want := range map[string][]string{
		"node": {"0.80× met", "4.00× met", "1.00× met", "900 ms met"},
		"go":   {"0.81× NOT met", "3.95× NOT met", "1.00× NOT met", "1.00 s NOT met"},
	} {
		ts := r.appTargets(app)
		if len(ts) != len(want) {
			t.Fatalf("%s: %d targets, want %d: %v", app, len(ts), len(want), ts)
		}
		for i, tg := range ts {
			if got := tg.value + " " + tg.verdict; got != want[i] {
				t.Errorf("%s: target %q = %q, want %q", app, tg.name, got, want[i])
			}
		}
	}

	// The tables have a column per system and the ratios whose systems ran.
	titles, values := r.ratios("go", "source")
	if strings.Join(titles, ",") != "Slipway / local,clean CI / Slipway,new / old builder" || values[0] != "0.81×" || values[2] != "–" {
		t.Errorf("ratios = %q %q", titles, values)
	}
	md := r.markdown()
	for _, want := range []string{"second attempt, the first failed: buildah build x: exit status 1", "1 build(s) failed and were run once more", "| go | one source file changed: Slipway ≤ 0.8× the local floor | 0.81× | NOT met |", "| node | no change: Slipway ≤ 1 s | 900 ms | met |"} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	if svg := r.chart(); !strings.Contains(svg, ">go app<") || !strings.Contains(svg, ">node app<") {
		t.Error("the chart does not label both apps")
	}
}
