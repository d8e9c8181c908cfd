.PHONY: run test build
run:
	scripts/run
test:
	scripts/test
build:
	go build -o bin/slipway ./cmd/slipway
