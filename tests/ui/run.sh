#!/usr/bin/env bash
# The browser tests of the Container panel: a registry serving the test images as docker.io's
# mirror, a JupyterLab with the cellbox kernel and the extension, Playwright (Galata) in
# Debian's chromium. Everything it starts is stopped and everything it makes is removed at
# the end, also when a test fails. Extra arguments go to `playwright test`.
#
#   tests/ui/run.sh                     # all specs
#   tests/ui/run.sh -g 'memory'         # some
#
# Screenshots and traces: tests/ui/test-results/, report: tests/ui/playwright-report/.
set -euo pipefail

UI=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$UI/../.." && pwd)
VENV=${VENV:-$SRC/.venv}
PY="$VENV/bin/python"
BUILD=${BUILD:-$SRC/.build}
mkdir -p "$BUILD"

log() { printf '[ui] %s\n' "$*"; }

# -- node modules of the tests (Galata, Playwright; no browser download) ---------------
cd "$UI"
lock_hash=$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat "$BUILD/ui-node.stamp" 2>/dev/null)" != "$lock_hash" ]; then
    log "npm ci (tests/ui)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
    echo "$lock_hash" > "$BUILD/ui-node.stamp"
fi

# -- a scope of our own: store, run dir, cgroup parent, ports --------------------------
STATE=$(mktemp -d /tmp/cellbox-ui.XXXXXX)
SCOPE="cbxui$$"
export CELLBOX_ROOT="$STATE/root"
export CELLBOX_RUN="$STATE/run"
export CELLBOX_CGROUP_PARENT="cellbox-$SCOPE"
export CELLBOX_TEST_SCOPE="$SCOPE"
# A bridge (name <= 15 characters) and a /24 of our own (see tests/support/netscope.py).
export CELLBOX_BRIDGE="$SCOPE"
export CELLBOX_SUBNET=$(cd "$SRC" && "$PY" -c "from tests.support.netscope import free_subnet; print(free_subnet($$))")
export JUPYTERLAB_GALATA_ROOT_DIR="$STATE/notebooks"
export JUPYTER_RUNTIME_DIR="$STATE/jupyter-runtime"
# Galata's server config, our own and chromium make temporary files (settings, workspaces,
# a terminal rc file): all of them under $STATE, removed at the end.
export TMPDIR="$STATE/tmp"
mkdir -p "$CELLBOX_ROOT" "$CELLBOX_RUN" "$JUPYTERLAB_GALATA_ROOT_DIR" "$TMPDIR"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REGISTRY_PORT=$(free_port)
export CELLBOX_UI_PORT=$(free_port)
export CELLBOX_REGISTRY_MIRRORS="http://127.0.0.1:$REGISTRY_PORT"
export PATH="$VENV/bin:$PATH"
SERVER_PID=""

cleanup() {
    local rc=$?
    set +e
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        log "stopping JupyterLab (pid $SERVER_PID) and its kernels"
        kill -TERM "$SERVER_PID"
        for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    # Kernels stop their containers on shutdown; a kernel that died cannot: remove what is
    # left in our store (only ours: CELLBOX_ROOT is this run's).
    for id in $(cellbox ps -a -q 2>/dev/null); do
        log "removing leftover container $id"
        cellbox rm -f "$id" >/dev/null 2>&1
    done
    (cd "$SRC" && "$PY" -m tests.support.images stop --state "$STATE/registry")
    (cd "$SRC" && "$PY" -c "from tests.support.netscope import cleanup_bridge; cleanup_bridge('$CELLBOX_BRIDGE')")
    local leaks
    leaks=$(find /sys/fs/cgroup -maxdepth 3 -type d -name "$CELLBOX_CGROUP_PARENT" 2>/dev/null)
    if [ -n "$leaks" ]; then
        log "LEAK: cgroups left behind: $leaks"
        rc=1
    fi
    if grep -q "$STATE" /proc/self/mountinfo; then
        log "LEAK: mounts left under $STATE"
        grep "$STATE" /proc/self/mountinfo | head -5
        rc=1
    else
        rm -rf --one-file-system "$STATE"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- the registry, as docker.io's mirror -------------------------------------------------
log "registry on 127.0.0.1:$REGISTRY_PORT"
(cd "$SRC" && "$PY" -m tests.support.images serve --port "$REGISTRY_PORT" --state "$STATE/registry")

# -- JupyterLab --------------------------------------------------------------------------
log "JupyterLab on 127.0.0.1:$CELLBOX_UI_PORT (log: $STATE/jupyter.log)"
jupyter lab --config "$UI/jupyter_server_test_config.py" >"$STATE/jupyter.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$CELLBOX_UI_PORT/api" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$STATE/jupyter.log"; log "JupyterLab did not start"; exit 1
    fi
    sleep 0.1
done

# -- the tests ---------------------------------------------------------------------------
log "playwright test $*"
set +e
npx playwright test "$@"
status=$?
set -e
if [ "$status" -ne 0 ]; then
    log "JupyterLab's log (last 80 lines):"
    tail -n 80 "$STATE/jupyter.log"
fi
exit "$status"
