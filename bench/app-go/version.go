package main

// The benchmark's "one source file changed" scenario edits this file.
const (
	version  = "1.0.0"
	revision = 0
)
