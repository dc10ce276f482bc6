#!/usr/bin/env bash
# Sets everything up, then runs every test suite: lint, types, unit, privileged, kernel,
# notebooks, the extension's jest tests and the browser tests. Every suite runs even when
# an earlier one failed; the summary at the end names each failed step.
# SUITES="unit kernel" runs a subset.
#
# Two lanes run side by side (the suites wait on containers and kernels much of the time,
# so the two cores have room). The first runs the pytest suites (unit, integration,
# privileged, kernel, notebooks) in one run spread over four pytest-xdist workers, a file
# per worker at a time; each worker is a session of its own, with its own names, cgroup
# parent, bridge and leak checks (tests/conftest.py). The second runs lint, types and
# jest, then the browser tests. Each suite's output goes to a log, printed whole when the
# suite ends.
source "$(dirname "$0")/lib.sh"
cd "$CELLBOX_SRC"
CURRENT_STEP="set-up (scripts/setup.sh, see above)"
"$CELLBOX_SRC/scripts/setup.sh"

SUITES=${SUITES:-"lint types unit integration privileged kernel notebooks jest ui"}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/cellbox-test-logs.XXXXXX")
trap 'rm -rf "$LOGS"' EXIT
# The tests' temporary files: a passed test's go when it ends (in its worker, beside the
# others), the rest when every suite passed; kept for a look otherwise.
TESTTMP=$(mktemp -d "${TMPDIR:-/tmp}/cbxtmp.XXXXXX")  # short: sockets live under it
PYTEST=("$VENV/bin/python" -m pytest -p no:cacheprovider -ra --durations=10
        --basetemp "$TESTTMP/p" -o tmp_path_retention_policy=failed)

wanted() { case " $SUITES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# run_suite NAME COMMAND...: run one suite (if in $SUITES) with its output in a log, then
# print the log and the verdict in one piece (the lock keeps the lanes' pieces apart).
run_suite() {
    local name=$1; shift
    wanted "$name" || return 0
    run_step "$name" "$@"
}

# run_step NAME COMMAND...: run_suite, whatever $SUITES says.
run_step() {
    local name=$1; shift
    local start=$SECONDS rc=0
    "$@" >"$LOGS/$name.log" 2>&1 </dev/null || rc=$?
    {
        flock 9
        step "tests: $name"
        cat "$LOGS/$name.log"
        if [ "$rc" -eq 0 ]; then
            echo "--> $name passed in $((SECONDS - start)) s"
        else
            echo "--> $name FAILED in $((SECONDS - start)) s" >&2
            echo "$name" >>"$LOGS/failed"
        fi
    } 9>"$LOGS/print.lock"
}

step "test user for the rootless tests (cellbox-test, with subordinate ids)"
id cellbox-test >/dev/null 2>&1 || useradd --create-home --shell /bin/bash cellbox-test
grep -q '^cellbox-test:' /etc/subuid || echo "cellbox-test:200000:65536" >> /etc/subuid
grep -q '^cellbox-test:' /etc/subgid || echo "cellbox-test:200000:65536" >> /etc/subgid

pytest_lane() {
    local dirs=() names=()
    for suite in notebooks kernel privileged integration unit; do  # longest files first
        wanted "$suite" && dirs+=("tests/$suite") && names+=("$suite")
    done
    [ ${#dirs[@]} -gt 0 ] || return 0
    run_step "${names[*]}" "${PYTEST[@]}" -n 4 --dist loadfile "${dirs[@]}"
}
other_lane() {
    run_suite lint "$VENV/bin/ruff" check runtime kernel tests bench scripts
    run_suite types "$VENV/bin/mypy"
    if [ -f labextension/package.json ]; then
        run_suite jest bash -c "cd labextension && npm test --silent"
        run_suite ui bash -c "cd tests/ui && ./run.sh"
    fi
}
CURRENT_STEP="tests"
pytest_lane &
pytests=$!
other_lane &
other=$!
wait "$pytests" "$other"

CURRENT_STEP="summary"
if [ -s "$LOGS/failed" ]; then
    printf '\n\033[1;31mFAILED suites: %s\033[0m\n' "$(tr '\n' ' ' <"$LOGS/failed")" >&2
    echo "the tests' temporary files are kept in $TESTTMP" >&2
    exit 1
fi
rm -rf --one-file-system "$TESTTMP"
printf '\n\033[1;32mall suites passed\033[0m\n'
