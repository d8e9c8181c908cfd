.PHONY: run test build faults
run:
	scripts/run
test:
	scripts/test
build:
	go build -o bin/slipway ./cmd/slipway
# The fault suite (issue 5; e2e/faults_test.go): kills agents and the server
# mid-build, cuts the registry, deletes volumes, replays deliveries and sends
# a bad-input corpus. About 5 minutes; needs root and podman, like make test.
faults:
	go test ./e2e -run TestFaultSuite -v -count=1
