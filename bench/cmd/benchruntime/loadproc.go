package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// loadCommand is the first argument that makes this program a load
// client (runLoad) instead of the benchmark.
const loadCommand = "load"

// procLoader sends a round's requests from a child process (this program
// run as a load client), so that the clients share neither the Go
// scheduler nor the garbage collector with the gateway, which runs in
// this process: as a server's clients do.
type procLoader struct {
	addr, host, path string
	c                int
	firstErr         string
}

// loadReport is what a load client prints: its round's figures.
type loadReport struct {
	Latencies []int64 `json:"lat_ns"`
	Elapsed   int64   `json:"elapsed_ns"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
}

// run runs one round of d in a new child process, after its warm-up.
func (p *procLoader) run(d time.Duration) side {
	self, err := os.Executable()
	if err != nil {
		return side{errors: 1}
	}
	cmd := exec.Command(self, loadCommand, "-addr", p.addr, "-host", p.host, "-path", p.path,
		"-c", strconv.Itoa(p.c), "-d", d.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var rep loadReport
	if err == nil {
		err = json.Unmarshal(out, &rep)
	}
	if err != nil {
		p.firstErr = fmt.Sprintf("load client: %v", err)
		return side{errors: 1}
	}
	if rep.FirstErr != "" && p.firstErr == "" {
		p.firstErr = rep.FirstErr
	}
	s := side{elapsed: time.Duration(rep.Elapsed), errors: rep.Errors}
	for _, l := range rep.Latencies {
		s.lat = append(s.lat, time.Duration(l))
	}
	return s
}

func (p *procLoader) close() {}

func (p *procLoader) err() string { return p.firstErr }

// runLoad is the load client: it opens its connections (a warm-up of a
// quarter of the round), then sends requests for the round and prints a
// loadReport.
func runLoad(args []string) error {
	fs := flag.NewFlagSet(loadCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to")
	host := fs.String("host", "", "Host header (default: addr)")
	path := fs.String("path", "/", "path to ask")
	c := fs.Int("c", 1, "concurrent clients")
	d := fs.Duration("d", time.Second, "length of the round")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l := newLoader(*addr, *host, *path, *c)
	defer l.close()
	l.run(*d / 4)
	s := l.run(*d)
	rep := loadReport{Elapsed: int64(s.elapsed), Errors: s.errors}
	if e, ok := l.firstErr.Load().(error); ok {
		rep.FirstErr = e.Error()
	}
	for _, x := range s.lat {
		rep.Latencies = append(rep.Latencies, int64(x))
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}
