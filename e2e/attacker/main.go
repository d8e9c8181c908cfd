// Command attacker is the attack suite's local attacker. The e2e tests run
// it as an unprivileged user (nobody), the way any other account on the
// control plane's host, or a build that escaped its container, would try
// the internal services.
//
// Usage: attacker NAME [ARG...]. It runs the attack NAME (one of those the
// files of this package register in attacks) and prints one JSON line,
// a Result, on stdout; it exits 0 whether or not the attack worked (the
// test decides), 2 for a usage error.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// Result is what an attack achieved.
type Result struct {
	// Blocked says the service refused the attack.
	Blocked bool `json:"blocked"`
	// Detail says what happened, for the test's message.
	Detail string `json:"detail"`
	// Seen is everything the attacker could read (message bodies,
	// histories, files): the test looks for secrets in it.
	Seen []string `json:"seen,omitempty"`
	// Wrote says the attacker changed something it must not have (an
	// image, a log line, a task result).
	Wrote bool `json:"wrote,omitempty"`
}

// attacks are the attacks by name; each file registers its own in init.
var attacks = map[string]func(args []string) Result{}

func main() {
	if len(os.Args) < 2 || attacks[os.Args[1]] == nil {
		names := make([]string, 0, len(attacks))
		for n := range attacks {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: attacker NAME [ARG...]; NAME one of %v\n", names)
		os.Exit(2)
	}
	r := attacks[os.Args[1]](os.Args[2:])
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

// blocked and open make Results.
func blocked(format string, a ...any) Result {
	return Result{Blocked: true, Detail: fmt.Sprintf(format, a...)}
}

func open(format string, a ...any) Result {
	return Result{Detail: fmt.Sprintf(format, a...)}
}

func init() {
	// self-test: the suite's plumbing, run as nobody; never blocked
	// by anything but tells the test who it ran as.
	attacks["whoami"] = func([]string) Result {
		return Result{Blocked: true, Detail: fmt.Sprintf("uid %d gid %d", os.Getuid(), os.Getgid())}
	}
}
