# Shared by the scripts: loud, named steps.
set -euo pipefail

CELLBOX_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$CELLBOX_SRC/.venv}
BUILD=${BUILD:-$CELLBOX_SRC/.build}
# Expensive artefacts (test images) are shared by every checkout on the machine.
CELLBOX_DEV_CACHE=${CELLBOX_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cellbox-dev}
export CELLBOX_SRC VENV BUILD CELLBOX_DEV_CACHE
mkdir -p "$BUILD" "$CELLBOX_DEV_CACHE"

CURRENT_STEP=""
step() {
    CURRENT_STEP="$*"
    printf '\n\033[1m==> %s\033[0m\n' "$*"
}
on_error() {
    local rc=$?
    printf '\n\033[1;31mFAILED (exit %s) at step: %s\033[0m\n' "$rc" "${CURRENT_STEP:-unknown}" >&2
    exit "$rc"
}
trap on_error ERR

# stamp NAME FILES...: true when the stamp matches the hash of FILES (already done).
stamp_hash() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
stamp_ok() {
    local name=$1; shift
    [ -f "$BUILD/$name.stamp" ] && [ "$(cat "$BUILD/$name.stamp")" = "$(stamp_hash "$@")" ]
}
stamp_write() {
    local name=$1; shift
    stamp_hash "$@" > "$BUILD/$name.stamp"
}
