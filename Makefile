# The two set-up commands for a fresh machine: `make run` and `make test`.
# Both install the wasm32-wasip2 Rust target when it is missing (the default
# policy is compiled to a component and embedded in the binary).

CARGO ?= cargo
LISTEN ?= 0.0.0.0:3001
# The admin interface's address (--admin-listen); empty: the server's default
# (127.0.0.1:3002). `switchboard policy …` finds it with
# SWITCHBOARD_ADMIN_LISTEN set to the same, or --admin-url.
ADMIN_LISTEN ?=
WASM_TARGET := wasm32-wasip2

.PHONY: run test build release wasm-target redis-server fmt lint clean bench bench-quick bench-cluster clients-test miniprogram-test browser-test

run: wasm-target
	$(CARGO) run --release -p switchboard -- --listen $(LISTEN) $(if $(ADMIN_LISTEN),--admin-listen $(ADMIN_LISTEN))

# The host is built once, with the natively compiled rules the benchmark
# compares against; the quick benchmark then runs those same debug binaries
# so the harness (bench/) never rots.
FEATURES := --features switchboard/native-rules

# The single-server suites named in CLUSTER_SUITES run a second time on
# three nodes on a redis-server of their own (SWITCHBOARD_TEST_NODES=3,
# tests/src/lib.rs; docs/CLUSTER.md, "Answers after what they caused").
CLUSTER_SUITES := --test protocol --test recovery --test resume --test stored --test presence

test: wasm-target redis-server
	$(CARGO) build -p switchboard -p loadgen $(FEATURES)
	$(CARGO) test --workspace --all-targets $(FEATURES)
	SWITCHBOARD_TEST_NODES=3 $(CARGO) test -p switchboard-tests $(FEATURES) $(CLUSTER_SUITES)
	$(MAKE) clients-test
	$(MAKE) browser-test
	$(MAKE) miniprogram-test
	python3 bench/bench.py --quick --no-build

# Debian's redis-server (and redis-cli), installed when missing, for the
# cluster tests: each starts its own on a free port and directory
# (tests/src/redis.rs). Nothing here starts the system service, and no test
# uses it or its port 6379.
redis-server:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y redis-server || { apt-get update && apt-get install -y redis-server; }; }

# The JavaScript client (clients/js): install its pinned dev dependencies when
# node_modules is missing or older than the lock file, build it (this also
# rewrites the committed copies host/static/switchboard.js and
# clients/miniprogram/lib/switchboard.js), and run its tests against the
# debug server binary that `make test` builds first. Needs node >= 20 and npm.
SWITCHBOARD_BIN ?= $(abspath target/debug/switchboard)

clients-test:
	cd clients/js && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	cd clients/js && npm run build
	cd clients/js && SWITCHBOARD_BIN='$(SWITCHBOARD_BIN)' npm test

# The WeChat mini-program sample (clients/miniprogram): its app.js and pages
# run under node through clients/js's wx shim (the WeChat runtime does not run
# here), against the debug server with signed tokens. Uses clients/js's build
# (dist/) and its node_modules (ws): run it after clients-test.
miniprogram-test:
	cd clients/miniprogram && SWITCHBOARD_BIN='$(SWITCHBOARD_BIN)' node --test test/*.test.mjs

# The web chat page (host/static, served by the binary at /) in a real
# Chromium, against the debug server (clients/e2e). Uses Debian's chromium
# (installed here when missing) through playwright-core: no browser download.
CHROMIUM ?= /usr/bin/chromium

browser-test:
	@[ -x '$(CHROMIUM)' ] || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }
	cd clients/e2e && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	cd clients/e2e && SWITCHBOARD_BIN='$(SWITCHBOARD_BIN)' CHROMIUM='$(CHROMIUM)' node --test --test-concurrency=1 chat.test.mjs admin.test.mjs

build: wasm-target
	$(CARGO) build --release -p switchboard

# Side by side with Bun, node.js ws and Socket.IO (bench/README.md). Needs node/npm.
bench: wasm-target
	python3 bench/bench.py

bench-quick: wasm-target
	python3 bench/bench.py --quick

# Room fan-out across cluster nodes on Redis, beside Socket.IO's Redis adapter
# (bench/README.md, "Cluster fan-out"). Needs node/npm and redis-server.
bench-cluster: wasm-target redis-server
	python3 bench/cluster.py

wasm-target:
	@rustup target list --installed 2>/dev/null | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

fmt:
	$(CARGO) fmt --all

lint: wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
