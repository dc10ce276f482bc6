#!/usr/bin/env bash
# Sets everything up, then runs every test suite: lint, types, unit, privileged, kernel,
# notebooks, the extension's jest tests and the browser tests. Every suite runs even when
# an earlier one failed; the summary at the end names each failed step.
# SUITES="unit kernel" runs a subset.
source "$(dirname "$0")/lib.sh"
cd "$CELLBOX_SRC"
CURRENT_STEP="set-up (scripts/setup.sh, see above)"
"$CELLBOX_SRC/scripts/setup.sh"

SUITES=${SUITES:-"lint types unit integration privileged kernel notebooks jest ui"}
PYTEST=("$VENV/bin/python" -m pytest -p no:cacheprovider -ra --durations=10)
failed=()

run_suite() {
    local name=$1; shift
    case " $SUITES " in *" $name "*) ;; *) return 0 ;; esac
    step "tests: $name"
    local start=$SECONDS
    if "$@"; then
        echo "--> $name passed in $((SECONDS - start)) s"
    else
        echo "--> $name FAILED in $((SECONDS - start)) s" >&2
        failed+=("$name")
    fi
}

step "test user for the rootless tests (cellbox-test, with subordinate ids)"
id cellbox-test >/dev/null 2>&1 || useradd --create-home --shell /bin/bash cellbox-test
grep -q '^cellbox-test:' /etc/subuid || echo "cellbox-test:200000:65536" >> /etc/subuid
grep -q '^cellbox-test:' /etc/subgid || echo "cellbox-test:200000:65536" >> /etc/subgid

run_suite lint "$VENV/bin/ruff" check runtime kernel tests bench scripts
run_suite types "$VENV/bin/mypy"
run_suite unit "${PYTEST[@]}" tests/unit
run_suite integration "${PYTEST[@]}" tests/integration
run_suite privileged "${PYTEST[@]}" tests/privileged
run_suite kernel "${PYTEST[@]}" tests/kernel
run_suite notebooks "${PYTEST[@]}" tests/notebooks
if [ -f labextension/package.json ]; then
    run_suite jest bash -c "cd labextension && npm test --silent"
    run_suite ui bash -c "cd tests/ui && ./run.sh"
fi

CURRENT_STEP="summary"
if [ ${#failed[@]} -gt 0 ]; then
    printf '\n\033[1;31mFAILED suites: %s\033[0m\n' "${failed[*]}" >&2
    exit 1
fi
printf '\n\033[1;32mall suites passed\033[0m\n'
