#!/usr/bin/env bash
# Sets up the virtual environment and runs the service on its embedded defaults:
# DICOM listener on port 11112 (AE SRSERVICE), Celery filesystem broker, SQLite job store and a
# local outbox, all under ./srservice-data. No Redis or PostgreSQL needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/srservice serve "$@"
