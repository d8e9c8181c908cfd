package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The specs in testdata are the config.json files buildah 1.42.1 (rootless)
// handed runc for `RUN echo normal`, `RUN --network=host echo host` and
// `RUN --network=none echo none`.
func TestCheck(t *testing.T) {
	spec := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	joined := strings.Replace(string(spec("run-default.json")), `"type": "network"`, `"type": "network", "path": "/proc/1/ns/net"`, 1)
	if joined == string(spec("run-default.json")) {
		t.Fatal("testdata/run-default.json has no network namespace to join")
	}
	files := map[string][]byte{
		"/b/default/config.json": spec("run-default.json"),
		"/b/none/config.json":    spec("run-none.json"),
		"/b/host/config.json":    spec("run-host.json"),
		"/b/joined/config.json":  []byte(joined),
		"/b/broken/config.json":  []byte("{"),
		"host/config.json":       spec("run-host.json"), // a relative bundle
		"config.json":            spec("run-host.json"), // the default bundle
	}
	read := func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	}
	tests := []struct {
		args []string
		want error // nil, errHostNetwork, or errOther
	}{
		{[]string{"--root", "/r", "create", "--bundle", "/b/default", "--pid-file", "/b/default/pid", "ctr"}, nil},
		{[]string{"create", "--bundle", "/b/none", "ctr"}, nil},
		{[]string{"--root", "/r", "create", "--bundle", "/b/host", "--pid-file", "/b/host/pid", "--no-new-keyring", "ctr"}, errHostNetwork},
		{[]string{"--root=/r", "--debug", "create", "--bundle=/b/host", "ctr"}, errHostNetwork},
		{[]string{"--log", "/l", "--log-format", "json", "run", "-b", "/b/host", "ctr"}, errHostNetwork},
		{[]string{"run", "-b=/b/host", "ctr"}, errHostNetwork},
		{[]string{"create", "--bundle", "host", "ctr"}, errHostNetwork},
		{[]string{"create", "ctr"}, errHostNetwork},
		{[]string{"create", "--bundle", "/b/joined", "ctr"}, errHostNetwork},
		{[]string{"create", "--bundle", "/b/broken", "ctr"}, errOther},
		{[]string{"create", "--bundle", "/b/missing", "ctr"}, errOther},
		// A global flag's value named like a command is not the command.
		{[]string{"--root", "create", "state", "ctr"}, nil},
		{[]string{"--root", "/r", "start", "ctr"}, nil},
		{[]string{"--root", "/r", "delete", "--force", "ctr"}, nil},
		{[]string{"state", "create"}, nil},
		{[]string{"--version"}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		err := check(tt.args, read)
		ok := err == nil && tt.want == nil || errors.Is(err, errHostNetwork) && tt.want == errHostNetwork ||
			err != nil && !errors.Is(err, errHostNetwork) && tt.want == errOther
		if !ok {
			t.Errorf("check(%q) = %v, want %v", tt.args, err, tt.want)
		}
	}
}

// errOther stands for any error but errHostNetwork in TestCheck.
var errOther = errors.New("another error")
