.PHONY: run test build bench bench-logs bench-runtime faults
run:
	scripts/run
test:
	scripts/test
build:
	go build -o bin/ ./cmd/slipway ./cmd/slipway-agent
# The benchmark (bench/README.md): two apps, 30-70 minutes; needs root, podman,
# the new builder (scripts/setup), the npm registry and the Go module proxy.
# Pass flags with BENCH_FLAGS, e.g. make bench BENCH_FLAGS="-runs 1".
bench: bench-logs
	go run ./bench/cmd/bench $(BENCH_FLAGS)
# The log path benchmark (bench/README.md, "Log path"): about a minute, no
# podman needed; writes bench/results/LOGS.md. Flags: BENCH_LOGS_FLAGS.
bench-logs:
	go run ./bench/cmd/benchlogs $(BENCH_LOGS_FLAGS)
# The app runtime's figures (issue 17, item 3; bench/README.md, "App
# runtime"): wakes, the gateway's overhead and 200 sleeping apps, side by
# side; about 10 minutes; needs root, podman, runc, busybox-static and Go.
# Writes bench/results/RUNTIME.md. Flags: BENCH_RUNTIME_FLAGS.
bench-runtime:
	go run ./bench/cmd/benchruntime $(BENCH_RUNTIME_FLAGS)
# The fault suite (issue 5; e2e/faults_test.go): kills agents and the server
# mid-build, cuts the registry, deletes volumes, replays deliveries and sends
# a bad-input corpus. About 5 minutes; needs root and podman, like make test.
faults:
	go test ./e2e -run TestFaultSuite -v -count=1
