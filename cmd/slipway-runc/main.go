// Command slipway-runc is the OCI runtime of Slipway's RUN steps: runc,
// after one check. buildah (since 1.24) honours `RUN --network=host`,
// which puts the step in the build host's network namespace, where the
// registry, NATS and Temporal listen on the loopback; a Dockerfile, a base
// image's ONBUILD trigger or a build argument in the flag's value can ask
// for it. slipway-runc refuses to create a container without a network
// namespace of its own (the one slirp4netns or netavark configure),
// however the step asked for it.
//
// scripts/setup installs it as /usr/local/libexec/slipway/runc, and package
// buildah passes it to every build with --runtime. It hands every command
// over to runc ($SLIPWAY_RUNC, else runc from PATH) with its arguments
// unchanged, and must do nothing else: it runs once per RUN step and
// command, so it stays small and imports nothing but the standard library.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if err := check(os.Args[1:], os.ReadFile); err != nil {
		fmt.Fprintf(os.Stderr, "slipway-runc: %v\n", err)
		os.Exit(1)
	}
	runc, err := realRunc()
	if err != nil {
		fmt.Fprintf(os.Stderr, "slipway-runc: %v\n", err)
		os.Exit(1)
	}
	err = syscall.Exec(runc, append([]string{runc}, os.Args[1:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "slipway-runc: exec %s: %v\n", runc, err)
	os.Exit(1)
}

// errHostNetwork is check's refusal.
var errHostNetwork = errors.New("refused a container without a network namespace of its own (RUN --network=host): " +
	"RUN steps must not reach the build host's network, where Slipway's services listen")

// globalValueFlags are runc's global flags that take a separate value.
var globalValueFlags = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// check refuses a `runc create` or `runc run` (args are runc's, without
// the program name) whose bundle's config.json gives the container no
// network namespace of its own: none (the host's), or one joined by path
// (someone else's). Other commands pass.
func check(args []string, readFile func(string) ([]byte, error)) error {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if globalValueFlags[args[i]] {
			i++
		}
		i++
	}
	if i >= len(args) || (args[i] != "create" && args[i] != "run") {
		return nil
	}
	bundle := "."
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--bundle" || a == "-b":
			if j+1 < len(args) {
				bundle = args[j+1]
			}
			j++
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case strings.HasPrefix(a, "-b="):
			bundle = strings.TrimPrefix(a, "-b=")
		}
	}
	b, err := readFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return fmt.Errorf("read the container's configuration: %w", err)
	}
	var spec struct {
		Linux *struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("read the container's configuration: %w", err)
	}
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == "network" && ns.Path == "" {
				return nil
			}
		}
	}
	return errHostNetwork
}

// realRunc finds the runc to hand over to: $SLIPWAY_RUNC, else runc on
// PATH, never this program itself.
func realRunc() (string, error) {
	runc := os.Getenv("SLIPWAY_RUNC")
	if runc == "" {
		runc = "runc"
	}
	p, err := exec.LookPath(runc)
	if err != nil {
		return "", fmt.Errorf("runc not found (apt-get install runc): %w", err)
	}
	self, _ := os.Executable()
	if rp, _ := filepath.EvalSymlinks(p); self != "" && (p == self || rp == self) {
		return "", fmt.Errorf("%s is this program, not runc: set SLIPWAY_RUNC", p)
	}
	return p, nil
}
