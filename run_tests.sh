#!/usr/bin/env bash
# The whole test suite (the README's test command): sets up .venv if needed, runs pytest.
# Extra arguments go to pytest (e.g. ./run_tests.sh -k filter). pytest's "no tests
# collected" (exit 5) stays a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/scripts/setup_venv.sh"
cd "$here"
# Four workers, a test file each at a time (pytest-xdist, --dist loadfile): most tests wait on
# a broker, a database or a child process, so four share two cores well. TEST_WORKERS=0 runs
# the suite in one process.
exec "$here/.venv/bin/python" -m pytest -n "${TEST_WORKERS:-4}" --dist loadfile "$@"
