#!/bin/sh
# Build the JavaScript example policy into a WebAssembly component.
#
#   sh examples/policies/js/build.sh [OUTPUT.wasm]
#
# OUTPUT defaults to examples/policies/js/policy.wasm. Needs Node.js >= 20 and
# npm; the packages pinned in package-lock.json are installed into
# node_modules/ on the first run (npm registry only, nothing else is fetched).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
wit="$here/../../../wit"

out=${1:-"$here/policy.wasm"}
case $out in
/*) ;;
*) out="$(pwd)/$out" ;;
esac

die() {
    echo "build.sh: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 ||
    die "node is not installed (Node.js >= 20 is needed to build the JS policy)"
command -v npm >/dev/null 2>&1 ||
    die "npm is not installed (it comes with Node.js; needed to install componentize-js)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] ||
    die "Node.js $(node --version) is too old: componentize-js needs Node.js >= 20"
[ -d "$wit" ] || die "WIT directory not found: $wit"
mkdir -p "$(dirname "$out")"

cd "$here"
if [ ! -x node_modules/.bin/componentize-js ]; then
    echo "build.sh: installing componentize-js into $here/node_modules" >&2
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error >/dev/null ||
            die "npm ci failed (is the npm registry reachable?)"
    else
        npm install --no-audit --no-fund --loglevel=error >/dev/null ||
            die "npm install failed (is the npm registry reachable?)"
    fi
fi

# The host links WASI 0.2 cli/io/clocks/random/filesystem/sockets but not
# wasi:http, so leave out the engine's fetch() (http) and its fetch-event
# handler. stdio stays on: uncaught JS errors are printed to stderr, which
# the host turns into log lines. random and clocks keep Math.random() and
# Date.now() real.
node_modules/.bin/componentize-js \
    --wit "$wit" \
    --world-name policy \
    --disable http fetch-event \
    -o "$out" \
    policy.js ||
    die "componentize-js failed"

[ -s "$out" ] || die "componentize-js did not write $out"

# Refuse a component the host cannot link.
imports=$(node_modules/.bin/jco wit "$out") ||
    die "cannot read the world of $out (jco wit failed)"
if printf '%s\n' "$imports" | grep -q 'import wasi:http/'; then
    die "$out imports wasi:http, which the host does not provide"
fi

echo "build.sh: wrote $out ($(wc -c <"$out" | tr -d ' ') bytes)" >&2
