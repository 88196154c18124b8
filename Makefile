# Lelantos. `make run` sets up and starts everything; `make test` runs every test.
.PHONY: run cluster build test unit e2e bench fuzz proto fmt vet clean

run:
	@bash scripts/run.sh $(ARGS)

cluster:
	@bash scripts/cluster.sh

build:
	@bash scripts/build.sh

test:
	@bash scripts/test.sh

bench:
	@bash scripts/bench.sh

fuzz:
	@bash scripts/fuzz.sh

proto:
	@bash scripts/gen-proto.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	go vet ./...

clean:
	rm -rf bin
