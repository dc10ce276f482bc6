#!/usr/bin/env bash
# Installs everything cellbox's demo and tests need, idempotently:
# Debian packages, node, a virtualenv with cellbox in it, the JupyterLab extension,
# the kernelspec, and the images the demo and tests serve from a local registry.
source "$(dirname "$0")/lib.sh"
cd "$CELLBOX_SRC"

step "Debian packages (scripts/apt-packages.txt)"
mapfile -t wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | grep -v '^\s*$')
command -v node >/dev/null && command -v npm >/dev/null || wanted+=(nodejs npm)
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "all present"
fi

step "Python virtualenv ($VENV) with cellbox and its test tools"
if ! stamp_ok venv pyproject.toml; then
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip setuptools wheel
    "$VENV/bin/pip" install -q -e ".[test]"
    stamp_write venv pyproject.toml
else
    echo "up to date"
fi

if [ -f labextension/package.json ]; then
    step "JupyterLab extension (labextension/ -> labextension/prebuilt)"
    srcs=(labextension/package.json labextension/package-lock.json labextension/tsconfig.json
          labextension/build-labextension.js labextension/install.json)
    mapfile -t more < <(find labextension/src labextension/style labextension/schema -type f 2>/dev/null | sort)
    if ! stamp_ok labext "${srcs[@]}" "${more[@]}" || [ ! -f labextension/prebuilt/package.json ]; then
        (cd labextension && npm ci --no-audit --no-fund && PATH="$VENV/bin:$PATH" npm run build:prod)
        stamp_write labext "${srcs[@]}" "${more[@]}"
    else
        echo "up to date"
    fi
    # An editable install does not copy data files: link the built extension in.
    dest="$VENV/share/jupyter/labextensions/cellbox-labextension"
    mkdir -p "$(dirname "$dest")"
    [ -L "$dest" ] || { rm -rf "$dest"; ln -s "$CELLBOX_SRC/labextension/prebuilt" "$dest"; }
fi

step "configurable-http-proxy for the JupyterHub test ($BUILD/hub)"
# JupyterHub's default proxy (Node), for tests/kernel/test_hub.py. 5.1 still runs on
# Debian 12's node 18 (5.2 needs node 20, 5.3 node 22).
CHP_VERSION=5.1.0
CHP="$BUILD/hub/node_modules/.bin/configurable-http-proxy"
if [ "$(cat "$BUILD/hub.stamp" 2>/dev/null)" != "$CHP_VERSION" ] || [ ! -x "$CHP" ]; then
    npm install --prefix "$BUILD/hub" --no-save --no-audit --no-fund \
        "configurable-http-proxy@$CHP_VERSION"
    echo "$CHP_VERSION" > "$BUILD/hub.stamp"
else
    echo "up to date"
fi

# mypy sees runtime/ and kernel/ under their package names through these links.
mkdir -p "$BUILD/typecheck/cellbox"
ln -sfn ../../../runtime "$BUILD/typecheck/cellbox/runtime"
ln -sfn ../../../kernel "$BUILD/typecheck/cellbox/kernel"

step "Kernelspec 'cellbox' in the virtualenv"
"$VENV/bin/cellbox" kernel install --sys-prefix >/dev/null
"$VENV/bin/jupyter" kernelspec list | grep cellbox >/dev/null

step "Images for the local registry (debian:bookworm, busybox, hello-world)"
"$VENV/bin/python" -m tests.support.images build

echo
echo "setup done"
