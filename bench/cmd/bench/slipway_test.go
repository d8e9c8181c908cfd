package main

import (
	"os"
	"testing"
)

// procCPU reads a process's CPU time: it grows while the process works,
// and an unknown process gives -1.
func TestProcCPU(t *testing.T) {
	before := procCPU(os.Getpid())
	if before < 0 {
		t.Fatalf("procCPU(self) = %v", before)
	}
	x := 0
	for i := 0; procCPU(os.Getpid()) == before; i++ {
		x += i * i // burn CPU until the kernel counts a tick
	}
	_ = x
	if procCPU(1<<30) != -1 {
		t.Error("procCPU of a process that does not exist is not -1")
	}
}
