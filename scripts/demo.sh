#!/usr/bin/env bash
# The demo: set up, serve the demo images from a local registry on 127.0.0.1 that acts as
# the docker.io mirror, run notebooks/tour.ipynb headless and print what its cells printed,
# then serve JupyterLab on 127.0.0.1 with the notebooks open.
# CELLBOX_DEMO_SERVE=0 stops after the tour (used to time the demo).
source "$(dirname "$0")/lib.sh"
cd "$CELLBOX_SRC"
CURRENT_STEP="set-up (scripts/setup.sh, see above)"
"$CELLBOX_SRC/scripts/setup.sh"

PORT=${CELLBOX_DEMO_REGISTRY_PORT:-5000}
step "local registry on 127.0.0.1:$PORT serving the demo images as docker.io's mirror"
"$VENV/bin/python" -m tests.support.images serve --port "$PORT" --state "$CELLBOX_DEV_CACHE/demo-registry"
stop_registry() {
    "$VENV/bin/python" -m tests.support.images stop --state "$CELLBOX_DEV_CACHE/demo-registry"
    echo "local registry stopped"
}
trap stop_registry EXIT
export CELLBOX_REGISTRY_MIRRORS="http://127.0.0.1:$PORT"
export PATH="$VENV/bin:$PATH"

step "the tour notebook, executed headless (notebooks/tour.ipynb)"
"$VENV/bin/python" scripts/run_notebook.py notebooks/tour.ipynb

if [ "${CELLBOX_DEMO_SERVE:-1}" = 0 ]; then
    exit 0
fi
step "JupyterLab on http://127.0.0.1:8888 (Ctrl-C to stop)"
(cd "$CELLBOX_SRC/notebooks" && "$VENV/bin/jupyter" lab --ip 127.0.0.1 \
    --port "${CELLBOX_DEMO_LAB_PORT:-8888}" --no-browser --allow-root tour.ipynb) \
    || true  # however it was stopped
echo "JupyterLab stopped"
