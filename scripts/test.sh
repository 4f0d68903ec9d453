#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs the whole suite:
# Debian tools, the virtual environment with the test extras, the quality gates (ruff, mypy
# --strict) and pytest. PostgreSQL (127.0.0.1:5432) is expected to be running; it is started here
# when installed but stopped. The tests start their own redis-server and Orthanc on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/ensure-services.sh
bash scripts/setup-venv.sh test
bash scripts/install-viewer.sh
echo "== ruff"; .venv/bin/ruff check srservice workers tests benchmarks scripts
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
