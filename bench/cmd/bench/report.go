package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// results are every sample of one benchmark run.
type results struct {
	Date      time.Time   `json:"date"`
	Elapsed   string      `json:"elapsed"`
	Machine   machineInfo `json:"machine"`
	Runs      int         `json:"runs"`
	Systems   []string    `json:"systems"`
	Scenarios []string    `json:"scenarios"`
	Network   string      `json:"network,omitempty"`
	// Registry is the registry's host:port in this run; step tables say
	// <registry> instead.
	Registry string   `json:"registry"`
	Samples  []sample `json:"samples"`
}

var imageIDRE = regexp.MustCompile(`\b[0-9a-f]{40,64}\b`)

// normalize makes one step's instruction comparable across runs and
// systems: intermediate image ids and the registry's port differ.
func (r *results) normalize(instr string) string {
	if r.Registry != "" {
		instr = strings.ReplaceAll(instr, r.Registry+"/", "<registry>/")
	}
	return imageIDRE.ReplaceAllString(instr, "<stage image>")
}

var systemTitle = map[string]string{
	"local":   "local floor",
	"slipway": "Slipway",
	"ci":      "clean CI",
}

// slipwayPhases are Slipway's phases in the order of a push's path.
var slipwayPhases = []struct{ key, title string }{
	{"webhook", "webhook answer"},
	{"queue", "queue"},
	{"wake", "wake"},
	{"between", "between phases"},
	{"fetch", "fetch"},
	{"build", "build"},
	{"push", "push"},
	{"total", "total (server)"},
	{"toBuilding", "POST → `building`"},
	{"orchestration", "queue+wake+fetch"},
	{"serverCPU", "server CPU"},
}

func (r *results) of(sc, sys string) []sample {
	var out []sample
	for _, s := range r.Samples {
		if s.Scenario == sc && s.System == sys {
			out = append(out, s)
		}
	}
	return out
}

// median of xs; the mean of the middle two for an even count.
func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *results) totals(sc, sys string) []int64 {
	var xs []int64
	for _, s := range r.of(sc, sys) {
		xs = append(xs, s.TotalMs)
	}
	return xs
}

func (r *results) medianTotal(sc, sys string) (int64, bool) {
	xs := r.totals(sc, sys)
	return median(xs), len(xs) > 0
}

func (r *results) medianPhase(sc, sys, phase string) (int64, bool) {
	var xs []int64
	for _, s := range r.of(sc, sys) {
		if phase == "orchestration" {
			q, ok1 := s.PhasesMs["queue"]
			w, ok2 := s.PhasesMs["wake"]
			f, ok3 := s.PhasesMs["fetch"]
			if ok1 && ok2 && ok3 {
				xs = append(xs, q+w+f)
			}
			continue
		}
		if v, ok := s.PhasesMs[phase]; ok {
			xs = append(xs, v)
		}
	}
	return median(xs), len(xs) > 0
}

// stepStat is one step's median over the runs of a scenario and system.
type stepStat struct {
	Instruction string
	MedianMs    int64
	Cached      int // runs in which the cache served it
	Runs        int
}

// stepStats matches steps across runs by instruction (and occurrence, for
// repeated instructions), in the order of the first run.
func (r *results) stepStats(sc, sys string) []stepStat {
	var order []string
	durs := map[string][]int64{}
	cached := map[string]int{}
	for _, s := range r.of(sc, sys) {
		seen := map[string]int{}
		for _, st := range s.Steps {
			instr := r.normalize(st.Instruction)
			seen[instr]++
			key := fmt.Sprintf("%s\x00%d", instr, seen[instr])
			if _, ok := durs[key]; !ok {
				order = append(order, key)
			}
			durs[key] = append(durs[key], st.DurationMs)
			if st.Cached {
				cached[key]++
			}
		}
	}
	var out []stepStat
	for _, k := range order {
		instr, _, _ := strings.Cut(k, "\x00")
		out = append(out, stepStat{Instruction: instr, MedianMs: median(durs[k]), Cached: cached[k], Runs: len(durs[k])})
	}
	return out
}

func fmtMs(v int64) string {
	if v < 1000 && v > -1000 {
		return fmt.Sprintf("%d ms", v)
	}
	return fmt.Sprintf("%.2f s", float64(v)/1000)
}

func secs(v int64) string { return fmt.Sprintf("%.1f", float64(v)/1000) }

func ratio(a, b int64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// print writes the summary to the terminal.
func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nPush → image in the registry, median of %d run(s), seconds\n\n", r.Runs)
	fmt.Fprintf(w, "%-26s", "scenario")
	for _, sys := range r.Systems {
		fmt.Fprintf(w, "%12s", systemTitle[sys])
	}
	fmt.Fprintf(w, "%16s%18s\n", "Slipway/local", "clean CI/Slipway")
	for _, sc := range r.Scenarios {
		fmt.Fprintf(w, "%-26s", scenarioTitle[sc])
		for _, sys := range r.Systems {
			v, _ := r.medianTotal(sc, sys)
			fmt.Fprintf(w, "%12s", secs(v))
		}
		l, _ := r.medianTotal(sc, "local")
		s, _ := r.medianTotal(sc, "slipway")
		c, _ := r.medianTotal(sc, "ci")
		fmt.Fprintf(w, "%16s%18s\n", ratio(s, l), ratio(c, s))
	}
	if !slices.Contains(r.Systems, "slipway") {
		return
	}
	fmt.Fprintf(w, "\nSlipway's phases, median\n\n%-26s", "scenario")
	for _, p := range slipwayPhases {
		fmt.Fprintf(w, "%14s", p.key)
	}
	fmt.Fprintln(w)
	for _, sc := range r.Scenarios {
		fmt.Fprintf(w, "%-26s", scenarioTitle[sc])
		for _, p := range slipwayPhases {
			v, ok := r.medianPhase(sc, "slipway", p.key)
			if !ok {
				fmt.Fprintf(w, "%14s", "–")
				continue
			}
			fmt.Fprintf(w, "%14s", fmtMs(v))
		}
		fmt.Fprintln(w)
	}
	for _, sc := range r.Scenarios {
		if sc == "cold" {
			continue
		}
		fmt.Fprintf(w, "\nSteps, %s (median ms; * = served by the cache in every run)\n", scenarioTitle[sc])
		r.printSteps(w, sc)
	}
	fmt.Fprintln(w)
	for _, t := range r.targets() {
		fmt.Fprintf(w, "target %-52s %-22s %s\n", t.name, t.value, t.verdict)
	}
}

func (r *results) printSteps(w io.Writer, sc string) {
	rows, cols := r.stepTable(sc)
	fmt.Fprintf(w, "  %-60s", "step")
	for _, c := range cols {
		fmt.Fprintf(w, "%12s", systemTitle[c])
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "  %-60s", truncate(row.instruction, 60))
		for _, c := range cols {
			fmt.Fprintf(w, "%12s", row.cells[c])
		}
		fmt.Fprintln(w)
	}
}

type stepRow struct {
	instruction string
	cells       map[string]string
}

// stepTable lines up the systems' step medians for one scenario.
func (r *results) stepTable(sc string) ([]stepRow, []string) {
	var cols []string
	var rows []stepRow
	index := map[string]int{}
	for _, sys := range r.Systems {
		stats := r.stepStats(sc, sys)
		if len(stats) == 0 {
			continue
		}
		cols = append(cols, sys)
		seen := map[string]int{}
		for _, st := range stats {
			seen[st.Instruction]++
			key := fmt.Sprintf("%s\x00%d", st.Instruction, seen[st.Instruction])
			i, ok := index[key]
			if !ok {
				i = len(rows)
				index[key] = i
				rows = append(rows, stepRow{instruction: st.Instruction, cells: map[string]string{}})
			}
			cell := fmt.Sprintf("%d", st.MedianMs)
			if st.Cached == st.Runs && st.Runs > 0 {
				cell += "*"
			}
			rows[i].cells[sys] = cell
		}
	}
	// Time of the build phase outside every step: podman's start, reading
	// the context, and (for Slipway) the activity around podman.
	row := stepRow{instruction: "(build phase outside the steps)", cells: map[string]string{}}
	for _, sys := range cols {
		var xs []int64
		for _, s := range r.of(sc, sys) {
			var sum int64
			for _, st := range s.Steps {
				sum += st.DurationMs
			}
			xs = append(xs, s.PhasesMs["build"]-sum)
		}
		row.cells[sys] = fmt.Sprintf("%d", median(xs))
	}
	rows = append(rows, row)
	return rows, cols
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

type target struct{ name, value, verdict string }

// targets checks issue 3's targets against the medians.
func (r *results) targets() []target {
	var out []target
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	l, okL := r.medianTotal("source", "local")
	s, okS := r.medianTotal("source", "slipway")
	c, okC := r.medianTotal("source", "ci")
	if okL && okS {
		q := float64(s) / float64(l)
		out = append(out, target{"source change: Slipway within 1.15× of local floor", fmt.Sprintf("%.2f×", q), verdict(q <= 1.15)})
	}
	if okS && okC {
		q := float64(c) / float64(s)
		out = append(out, target{"source change: Slipway ≥ 4× faster than clean CI", fmt.Sprintf("%.2f×", q), verdict(q >= 4)})
	}
	var wakes, orch, toB []int64
	for _, smp := range r.Samples {
		if smp.System != "slipway" || smp.Scenario == "cold" {
			continue
		}
		if v, ok := smp.PhasesMs["wake"]; ok {
			wakes = append(wakes, v)
		}
		if v, ok := smp.PhasesMs["toBuilding"]; ok {
			toB = append(toB, v)
		}
		orch = append(orch, smp.PhasesMs["queue"]+smp.PhasesMs["wake"]+smp.PhasesMs["fetch"])
	}
	if len(wakes) > 0 {
		out = append(out, target{"wake ≤ 250 ms (median, warm scenarios)", fmtMs(median(wakes)), verdict(median(wakes) <= 250)})
	}
	if len(toB) > 0 {
		out = append(out, target{"webhook → build command ≤ 300 ms (median, POST → `building`)", fmtMs(median(toB)), verdict(median(toB) <= 300)})
	}
	if len(orch) > 0 {
		out = append(out, target{"queue + wake + fetch (median, warm scenarios)", fmtMs(median(orch)), verdict(median(orch) <= 300)})
	}
	return out
}

// write writes RESULTS.md, results.json and chart.svg to dir.
func (r *results) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(r.chart()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "RESULTS.md"), []byte(r.markdown()), 0o644)
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmark results\n\n")
	p("Written by `make bench` (bench/cmd/bench); see bench/README.md for the method.\n\n")
	p("- Date: %s (took %s)\n", r.Date.Format("2006-01-02 15:04 MST"), r.Elapsed)
	p("- Machine: %s\n", r.Machine.String())
	p("- Storage: %s; Go %s\n", r.Machine.Storage, r.Machine.Go)
	p("- Runs: median of %d per scenario and system, systems interleaved (their order rotates every run)\n", r.Runs)
	if r.Network != "" {
		p("- podman build --network %s for the local and clean-CI systems\n", r.Network)
	}
	p("\n## Push → image in the registry (seconds, median)\n\n")
	p("![chart](chart.svg)\n\n")
	p("| scenario |")
	for _, sys := range r.Systems {
		p(" %s |", systemTitle[sys])
	}
	p(" Slipway / local | clean CI / Slipway |\n|---|")
	for range r.Systems {
		p("---:|")
	}
	p("---:|---:|\n")
	for _, sc := range r.Scenarios {
		p("| %s |", scenarioTitle[sc])
		for _, sys := range r.Systems {
			xs := r.totals(sc, sys)
			if len(xs) == 0 {
				p(" – |")
				continue
			}
			p(" %s (%s–%s) |", secs(median(xs)), secs(slices.Min(xs)), secs(slices.Max(xs)))
		}
		l, _ := r.medianTotal(sc, "local")
		s, _ := r.medianTotal(sc, "slipway")
		c, _ := r.medianTotal(sc, "ci")
		p(" %s | %s |\n", ratio(s, l), ratio(c, s))
	}
	p("\nCells: median (min–max).\n")

	if ts := r.targets(); len(ts) > 0 {
		p("\n## Issue 3's targets\n\n| target | measured | |\n|---|---:|---|\n")
		for _, t := range ts {
			p("| %s | %s | %s |\n", t.name, t.value, t.verdict)
		}
	}

	if slices.Contains(r.Systems, "slipway") {
		p("\n## Slipway's phases (median)\n\n| scenario |")
		for _, ph := range slipwayPhases {
			p(" %s |", ph.title)
		}
		p("\n|---|")
		for range slipwayPhases {
			p("---:|")
		}
		p("\n")
		for _, sc := range r.Scenarios {
			p("| %s |", scenarioTitle[sc])
			for _, ph := range slipwayPhases {
				if v, ok := r.medianPhase(sc, "slipway", ph.key); ok {
					p(" %s |", fmtMs(v))
				} else {
					p(" – |")
				}
			}
			p("\n")
		}
		p("\n`queue`, `wake`, `fetch`, `build`, `push` and `total` are the deployment's own timings " +
			"(`slipway deployments --json`); `between phases` is total minus the named phases " +
			"(workflow scheduling, the agent picking up its task); `webhook answer` and " +
			"`POST → building` are measured by the harness (the latter from the webhook POST to the " +
			"agent's `building` log line); `server CPU` is the CPU time the server process used " +
			"(its threads: Temporal, NATS, the store, the log archiver and indexer) from the POST to the " +
			"deployment seen succeeded: on 2 cores it competes with the build.\n")
	}

	for _, sc := range r.Scenarios {
		if sc == "cold" {
			continue
		}
		rows, cols := r.stepTable(sc)
		if len(cols) == 0 {
			continue
		}
		p("\n## Steps: %s (median ms; * = served by the layer cache in every run)\n\n| step |", scenarioTitle[sc])
		for _, c := range cols {
			p(" %s |", systemTitle[c])
		}
		p("\n|---|")
		for range cols {
			p("---:|")
		}
		p("\n")
		for _, row := range rows {
			p("| `%s` |", strings.ReplaceAll(row.instruction, "|", "\\|"))
			for _, c := range cols {
				v := row.cells[c]
				if v == "" {
					v = "–"
				}
				p(" %s |", v)
			}
			p("\n")
		}
	}

	p("\n## Every run\n\n| scenario | run | system | total | phases | steps | load |\n|---|---:|---|---:|---|---|---:|\n")
	for _, s := range r.Samples {
		p("| %s | %d | %s | %s | %s | %s | %.1f |\n", scenarioTitle[s.Scenario], s.Run, systemTitle[s.System], fmtMs(s.TotalMs), phaseSummary(s), stepSummary(s.Steps), s.Load1)
	}
	p("\n`load` is the machine's one-minute load average when the run started (%d cores).\n", r.Machine.Cores)
	return b.String()
}

var systemColor = map[string]string{"local": "#7f8c8d", "slipway": "#2e86de", "ci": "#e67e22"}

// chart draws a grouped bar chart of the medians, with min–max whiskers.
func (r *results) chart() string {
	const (
		width, height            = 820, 440
		left, right, top, bottom = 60, 20, 60, 70
		plotW, plotH             = width - left - right, height - top - bottom
		groupGap                 = 0.25
	)
	var maxMs int64 = 1
	for _, s := range r.Samples {
		maxMs = max(maxMs, s.TotalMs)
	}
	tick := niceTick(float64(maxMs) / 1000 / 5)
	yMax := math.Ceil(float64(maxMs)/1000/tick) * tick
	y := func(sec float64) float64 { return top + plotH - sec/yMax*plotH }

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="16" font-weight="bold">Push → image in the registry (seconds, median of %d; bars show min–max)</text>`+"\n", left, r.Runs)
	p(`<text x="%d" y="42" fill="#555">%s</text>`+"\n", left, html.EscapeString(r.Date.Format("2006-01-02")+" · "+r.Machine.Short()))
	for v := 0.0; v <= yMax+1e-9; v += tick {
		yy := y(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, yy, width-right, yy)
		p(`<text x="%d" y="%.1f" text-anchor="end" fill="#555">%g</text>`+"\n", left-6, yy+4, v)
	}
	groupW := float64(plotW) / float64(len(r.Scenarios))
	barW := groupW * (1 - groupGap) / float64(len(r.Systems))
	for gi, sc := range r.Scenarios {
		gx := float64(left) + float64(gi)*groupW + groupW*groupGap/2
		for si, sys := range r.Systems {
			xs := r.totals(sc, sys)
			if len(xs) == 0 {
				continue
			}
			med := float64(median(xs)) / 1000
			x := gx + float64(si)*barW
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x+1, y(med), barW-2, y(0)-y(med), systemColor[sys])
			cx := x + barW/2
			lo, hi := float64(slices.Min(xs))/1000, float64(slices.Max(xs))/1000
			if hi > lo {
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222"/>`+"\n", cx, y(lo), cx, y(hi))
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222"/>`+"\n", cx-4, y(hi), cx+4, y(hi))
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222"/>`+"\n", cx-4, y(lo), cx+4, y(lo))
			}
			p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%.1f</text>`+"\n", cx, math.Min(y(med), y(hi))-5, med)
		}
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(left)+(float64(gi)+0.5)*groupW, top+plotH+18, html.EscapeString(scenarioTitle[sc]))
	}
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, top+plotH, width-right, top+plotH)
	lx := left
	for _, sys := range r.Systems {
		p(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", lx, height-28, systemColor[sys])
		p(`<text x="%d" y="%d">%s</text>`+"\n", lx+16, height-18, html.EscapeString(systemTitle[sys]))
		lx += 130
	}
	p("</svg>\n")
	return b.String()
}

// niceTick rounds a raw tick interval up to 1, 2 or 5 times a power of ten.
func niceTick(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}
