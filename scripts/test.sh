#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs the whole suite:
# Debian tools, the virtual environment with the test extras, the quality gates (ruff, mypy
# --strict) and pytest. Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) are expected to be
# running; they are started here when installed but stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/ensure-services.sh
bash scripts/setup-venv.sh test
echo "== ruff"; .venv/bin/ruff check srservice workers tests benchmarks scripts
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
