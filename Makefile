# The two set-up commands for a fresh machine: `make run` and `make test`.
# Both install the wasm32-wasip2 Rust target when it is missing (the default
# policy is compiled to a component and embedded in the binary).

CARGO ?= cargo
LISTEN ?= 0.0.0.0:3001
WASM_TARGET := wasm32-wasip2

.PHONY: run test build release wasm-target fmt lint clean bench bench-quick

run: wasm-target
	$(CARGO) run --release -p switchboard -- --listen $(LISTEN)

# The host is built once, with the natively compiled rules the benchmark
# compares against; the quick benchmark then runs those same debug binaries
# so the harness (bench/) never rots.
FEATURES := --features switchboard/native-rules

test: wasm-target
	$(CARGO) build -p switchboard -p loadgen $(FEATURES)
	$(CARGO) test --workspace --all-targets $(FEATURES)
	python3 bench/bench.py --quick --no-build

build: wasm-target
	$(CARGO) build --release -p switchboard

# Side by side with Bun, node.js ws and Socket.IO (bench/README.md). Needs node/npm.
bench: wasm-target
	python3 bench/bench.py

bench-quick: wasm-target
	python3 bench/bench.py --quick

wasm-target:
	@rustup target list --installed 2>/dev/null | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

fmt:
	$(CARGO) fmt --all

lint: wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
