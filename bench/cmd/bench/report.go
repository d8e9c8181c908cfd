package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
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
	Registry string `json:"registry"`
	// Apps are the sample apps, in the order of the tables.
	Apps []appInfo `json:"apps"`
	// Builders says which builder each system other than Slipway ran
	// (its version line and executable).
	Builders map[string]string `json:"builders"`
	Samples  []sample          `json:"samples"`
}

// appInfo describes one sample app in the results.
type appInfo struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// BuildArgs are the build arguments every system passed (-build-args);
	// without them the Dockerfile's ARG defaults were rewritten instead.
	BuildArgs map[string]string `json:"buildArgs,omitempty"`
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
	"local":     "local floor",
	"local-old": "local, old builder",
	"slipway":   "Slipway",
	"ci":        "clean CI",
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

func (r *results) of(app, sc, sys string) []sample {
	var out []sample
	for _, s := range r.Samples {
		if s.App == app && s.Scenario == sc && s.System == sys {
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

func (r *results) totals(app, sc, sys string) []int64 {
	var xs []int64
	for _, s := range r.of(app, sc, sys) {
		xs = append(xs, s.TotalMs)
	}
	return xs
}

func (r *results) medianTotal(app, sc, sys string) (int64, bool) {
	xs := r.totals(app, sc, sys)
	return median(xs), len(xs) > 0
}

func (r *results) medianPhase(app, sc, sys, phase string) (int64, bool) {
	var xs []int64
	for _, s := range r.of(app, sc, sys) {
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
func (r *results) stepStats(app, sc, sys string) []stepStat {
	var order []string
	durs := map[string][]int64{}
	cached := map[string]int{}
	for _, s := range r.of(app, sc, sys) {
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

// ratioColumns are the ratios each app's table ends with: a/b of two
// systems' medians, shown when both were measured.
var ratioColumns = []struct{ a, b, title string }{
	{"slipway", "local", "Slipway / local"},
	{"ci", "slipway", "clean CI / Slipway"},
	{"local", "local-old", "new / old builder"},
}

// ratios returns the titles and values of the ratio columns for one app
// and scenario (only those whose systems both ran).
func (r *results) ratios(app, sc string) (titles, values []string) {
	for _, c := range ratioColumns {
		if !slices.Contains(r.Systems, c.a) || !slices.Contains(r.Systems, c.b) {
			continue
		}
		a, _ := r.medianTotal(app, sc, c.a)
		b, _ := r.medianTotal(app, sc, c.b)
		titles = append(titles, c.title)
		values = append(values, ratio(a, b))
	}
	return titles, values
}

// print writes the summary to the terminal.
func (r *results) print(w io.Writer) {
	for _, app := range r.Apps {
		fmt.Fprintf(w, "\n%s: push → image in the registry, median of %d run(s), seconds\n\n", app.Title, r.Runs)
		fmt.Fprintf(w, "%-26s", "scenario")
		for _, sys := range r.Systems {
			fmt.Fprintf(w, "%20s", systemTitle[sys])
		}
		titles, _ := r.ratios(app.Name, "")
		for _, t := range titles {
			fmt.Fprintf(w, "%20s", t)
		}
		fmt.Fprintln(w)
		for _, sc := range r.Scenarios {
			fmt.Fprintf(w, "%-26s", scenarioTitle[sc])
			for _, sys := range r.Systems {
				v, _ := r.medianTotal(app.Name, sc, sys)
				fmt.Fprintf(w, "%20s", secs(v))
			}
			_, values := r.ratios(app.Name, sc)
			for _, v := range values {
				fmt.Fprintf(w, "%20s", v)
			}
			fmt.Fprintln(w)
		}
		if slices.Contains(r.Systems, "slipway") {
			fmt.Fprintf(w, "\nSlipway's phases, median\n\n%-26s", "scenario")
			for _, p := range slipwayPhases {
				fmt.Fprintf(w, "%14s", p.key)
			}
			fmt.Fprintln(w)
			for _, sc := range r.Scenarios {
				fmt.Fprintf(w, "%-26s", scenarioTitle[sc])
				for _, p := range slipwayPhases {
					v, ok := r.medianPhase(app.Name, sc, "slipway", p.key)
					if !ok {
						fmt.Fprintf(w, "%14s", "–")
						continue
					}
					fmt.Fprintf(w, "%14s", fmtMs(v))
				}
				fmt.Fprintln(w)
			}
		}
		for _, sc := range r.Scenarios {
			if sc == "cold" {
				continue
			}
			fmt.Fprintf(w, "\nSteps, %s, %s (median ms; * = served by the cache in every run)\n", app.Name, scenarioTitle[sc])
			r.printSteps(w, app.Name, sc)
		}
		fmt.Fprintln(w)
		for _, t := range r.appTargets(app.Name) {
			fmt.Fprintf(w, "target %-4s %-56s %-10s %s\n", app.Name, t.name, t.value, t.verdict)
		}
	}
	fmt.Fprintln(w)
	for _, t := range r.orchestrationTargets() {
		fmt.Fprintf(w, "target %-61s %-10s %s\n", t.name, t.value, t.verdict)
	}
	for _, sys := range r.Systems {
		if b, ok := r.Builders[sys]; ok {
			fmt.Fprintf(w, "builder, %s: %s\n", systemTitle[sys], b)
		}
	}
}

func (r *results) printSteps(w io.Writer, app, sc string) {
	rows, cols := r.stepTable(app, sc)
	fmt.Fprintf(w, "  %-60s", "step")
	for _, c := range cols {
		fmt.Fprintf(w, "%20s", systemTitle[c])
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "  %-60s", truncate(row.instruction, 60))
		for _, c := range cols {
			fmt.Fprintf(w, "%20s", row.cells[c])
		}
		fmt.Fprintln(w)
	}
}

type stepRow struct {
	instruction string
	cells       map[string]string
}

// stepTable lines up the systems' step medians for one app and scenario.
func (r *results) stepTable(app, sc string) ([]stepRow, []string) {
	var cols []string
	var rows []stepRow
	index := map[string]int{}
	for _, sys := range r.Systems {
		stats := r.stepStats(app, sc, sys)
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
		for _, s := range r.of(app, sc, sys) {
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

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// appTargets checks issue 14's targets for one app against the medians:
// a source change within 0.8× the local floor and 4× faster than clean
// CI, a dependency change within the local floor, no change within 1 s.
func (r *results) appTargets(app string) []target {
	var out []target
	within := func(sc, name string, limit float64) {
		l, okL := r.medianTotal(app, sc, "local")
		s, okS := r.medianTotal(app, sc, "slipway")
		if okL && okS && l > 0 {
			q := float64(s) / float64(l)
			out = append(out, target{name, fmt.Sprintf("%.2f×", q), verdict(q <= limit)})
		}
	}
	within("source", "one source file changed: Slipway ≤ 0.8× the local floor", 0.8)
	s, okS := r.medianTotal(app, "source", "slipway")
	c, okC := r.medianTotal(app, "source", "ci")
	if okS && okC && s > 0 {
		q := float64(c) / float64(s)
		out = append(out, target{"one source file changed: Slipway ≥ 4× faster than clean CI", fmt.Sprintf("%.2f×", q), verdict(q >= 4)})
	}
	within("deps", "dependencies changed: Slipway ≤ 1.0× the local floor", 1.0)
	if v, ok := r.medianTotal(app, "nochange", "slipway"); ok {
		out = append(out, target{"no change: Slipway ≤ 1 s", fmtMs(v), verdict(v <= 1000)})
	}
	return out
}

// orchestrationTargets checks issue 3's orchestration targets against the
// medians of every app's warm Slipway deployments.
func (r *results) orchestrationTargets() []target {
	var out []target
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

// printf is fmt.Printf onto the text being written.
type printf func(format string, args ...any)

// markdown is RESULTS.md: the settings, the tables of times and steps,
// the targets and every run.
func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	r.mdHeader(p)
	r.mdTotals(p)
	r.mdTargets(p)
	r.mdPhases(p)
	r.mdSteps(p)
	r.mdRuns(p)
	return b.String()
}

// mdHeader writes the run's date, machine, builders and settings.
func (r *results) mdHeader(p printf) {
	p("# Benchmark results\n\n")
	p("Written by `make bench` (bench/cmd/bench); see bench/README.md for the method.\n\n")
	p("- Date: %s (took %s)\n", r.Date.Format("2006-01-02 15:04 MST"), r.Elapsed)
	p("- Machine: %s\n", r.Machine.String())
	p("- Storage: %s; Go %s\n", r.Machine.Storage, r.Machine.Go)
	for _, sys := range r.Systems {
		if v, ok := r.Builders[sys]; ok {
			p("- Builder, %s: %s\n", systemTitle[sys], v)
		}
	}
	p("- Runs: median of %d per scenario, app and system, systems interleaved (their order, and the apps', rotates every run)\n", r.Runs)
	for _, app := range r.Apps {
		if len(app.BuildArgs) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(app.BuildArgs)) {
				kv = append(kv, "`"+k+"="+app.BuildArgs[k]+"`")
			}
			p("- Build arguments of the %s app (every system): %s\n", app.Name, strings.Join(kv, ", "))
		}
	}
	if r.Network != "" {
		p("- build --network %s for the local and clean-CI systems\n", r.Network)
	}
}

// mdTotals writes a table per app of the median time from push to image, per scenario and system.
func (r *results) mdTotals(p printf) {
	p("\n## Push → image in the registry (seconds, median)\n\n")
	p("![chart](chart.svg)\n")
	for _, app := range r.Apps {
		titles, _ := r.ratios(app.Name, "")
		p("\n### %s\n\n| scenario |", app.Title)
		for _, sys := range r.Systems {
			p(" %s |", systemTitle[sys])
		}
		for _, t := range titles {
			p(" %s |", t)
		}
		p("\n|---|%s\n", strings.Repeat("---:|", len(r.Systems)+len(titles)))
		for _, sc := range r.Scenarios {
			p("| %s |", scenarioTitle[sc])
			for _, sys := range r.Systems {
				xs := r.totals(app.Name, sc, sys)
				if len(xs) == 0 {
					p(" – |")
					continue
				}
				p(" %s (%s–%s) |", secs(median(xs)), secs(slices.Min(xs)), secs(slices.Max(xs)))
			}
			_, values := r.ratios(app.Name, sc)
			for _, v := range values {
				p(" %s |", v)
			}
			p("\n")
		}
	}
	p("\nCells: median (min–max).\n")
}

// mdTargets writes the targets of issues 14 and 3 and how the run measured up.
func (r *results) mdTargets(p printf) {
	var targets []string
	for _, app := range r.Apps {
		for _, t := range r.appTargets(app.Name) {
			targets = append(targets, fmt.Sprintf("| %s | %s | %s | %s |\n", app.Name, t.name, t.value, t.verdict))
		}
	}
	for _, t := range r.orchestrationTargets() {
		targets = append(targets, fmt.Sprintf("| all | %s | %s | %s |\n", t.name, t.value, t.verdict))
	}
	if len(targets) > 0 {
		p("\n## Targets\n\nIssue 14's, per app; the orchestration targets (issue 3) over every app's warm deployments.\n\n| app | target | measured | |\n|---|---|---:|---|\n%s", strings.Join(targets, ""))
	}
}

// mdPhases writes the median of Slipway's phases, per app and scenario.
func (r *results) mdPhases(p printf) {
	if slices.Contains(r.Systems, "slipway") {
		p("\n## Slipway's phases (median)\n\n| app | scenario |")
		for _, ph := range slipwayPhases {
			p(" %s |", ph.title)
		}
		p("\n|---|---|%s\n", strings.Repeat("---:|", len(slipwayPhases)))
		for _, app := range r.Apps {
			for _, sc := range r.Scenarios {
				p("| %s | %s |", app.Name, scenarioTitle[sc])
				for _, ph := range slipwayPhases {
					if v, ok := r.medianPhase(app.Name, sc, "slipway", ph.key); ok {
						p(" %s |", fmtMs(v))
					} else {
						p(" – |")
					}
				}
				p("\n")
			}
		}
		p("\n`queue`, `wake`, `fetch`, `build`, `push` and `total` are the deployment's own timings " +
			"(`slipway deployments --json`); `between phases` is total minus the named phases " +
			"(workflow scheduling, the agent picking up its task); `webhook answer` and " +
			"`POST → building` are measured by the harness (the latter from the webhook POST to the " +
			"agent's `building` log line); `server CPU` is the CPU time the server process used " +
			"(its threads: Temporal, NATS, the store, the log archiver and indexer) from the POST to the " +
			"deployment seen succeeded: on 2 cores it competes with the build.\n")
	}
}

// mdSteps writes a table per app and warm scenario of the median time of each build step.
func (r *results) mdSteps(p printf) {
	for _, app := range r.Apps {
		for _, sc := range r.Scenarios {
			if sc == "cold" {
				continue
			}
			rows, cols := r.stepTable(app.Name, sc)
			if len(cols) == 0 {
				continue
			}
			p("\n## Steps: %s, %s (median ms; * = served by the layer cache in every run)\n\n| step |", app.Name, scenarioTitle[sc])
			for _, c := range cols {
				p(" %s |", systemTitle[c])
			}
			p("\n|---|%s\n", strings.Repeat("---:|", len(cols)))
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
	}
}

// mdRuns writes a row per run.
func (r *results) mdRuns(p printf) {
	p("\n## Every run\n\n| app | scenario | run | system | total | phases | steps | load |\n|---|---|---:|---|---:|---|---|---:|\n")
	retries := 0
	for _, s := range r.Samples {
		steps := stepSummary(s.Steps)
		if s.Retried != "" {
			retries++
			steps += "; second attempt, the first failed: " + strings.ReplaceAll(s.Retried, "|", "\\|")
		}
		p("| %s | %s | %d | %s | %s | %s | %s | %.1f |\n", s.App, scenarioTitle[s.Scenario], s.Run, systemTitle[s.System], fmtMs(s.TotalMs), phaseSummary(s), steps, s.Load1)
	}
	p("\n`load` is the machine's one-minute load average when the run started (%d cores).", r.Machine.Cores)
	if retries > 0 {
		p(" %d build(s) failed and were run once more (a warm storage then starts from what the failed attempt left).", retries)
	}
	p("\n")
}

// chartLabel is a scenario's name under its bars, where a group is narrow.
var chartLabel = map[string]string{"cold": "cold", "nochange": "no change", "source": "one source file", "deps": "dependencies"}

var systemColor = map[string]string{"local": "#7f8c8d", "local-old": "#bdc3c7", "slipway": "#2e86de", "ci": "#e67e22"}

// chart draws a grouped bar chart of the medians, with min–max whiskers:
// a group of bars per app and scenario.
func (r *results) chart() string {
	const (
		height                   = 460
		left, right, top, bottom = 60, 20, 60, 90
		plotH                    = height - top - bottom
		groupGap                 = 0.25
	)
	groups := len(r.Apps) * len(r.Scenarios)
	width := max(820, left+right+groups*(30*len(r.Systems)+20))
	plotW := width - left - right
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
	groupW := float64(plotW) / float64(max(1, groups))
	barW := groupW * (1 - groupGap) / float64(len(r.Systems))
	for gi := range groups {
		app, sc := r.Apps[gi/len(r.Scenarios)], r.Scenarios[gi%len(r.Scenarios)]
		gx := float64(left) + float64(gi)*groupW + groupW*groupGap/2
		if gi%len(r.Scenarios) == 0 {
			p(`<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n", float64(left)+(float64(gi)+float64(len(r.Scenarios))/2)*groupW, top+plotH+38, html.EscapeString(app.Name+" app"))
			if gi > 0 {
				p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="4 3"/>`+"\n", float64(left)+float64(gi)*groupW, top, float64(left)+float64(gi)*groupW, top+plotH+44)
			}
		}
		for si, sys := range r.Systems {
			xs := r.totals(app.Name, sc, sys)
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
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(left)+(float64(gi)+0.5)*groupW, top+plotH+18, html.EscapeString(chartLabel[sc]))
	}
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, top+plotH, width-right, top+plotH)
	lx := left
	for _, sys := range r.Systems {
		p(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", lx, height-28, systemColor[sys])
		p(`<text x="%d" y="%d">%s</text>`+"\n", lx+16, height-18, html.EscapeString(systemTitle[sys]))
		lx += 150
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
