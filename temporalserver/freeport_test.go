package temporalserver

import (
	"net"
	"strconv"
	"testing"
)

// FreePort hands out bindable ports below the kernel's ephemeral range
// (where outgoing connections cannot take them), never the same twice.
func TestFreePort(t *testing.T) {
	lo, hi := freePortRange()
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Errorf("port %d outside [%d, %d)", p, lo, hi)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}
