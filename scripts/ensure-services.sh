#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL answers; starts it when installed but stopped. (Redis is
# not needed here: the tests start a private redis-server on a free port.)
set -uo pipefail
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    echo "warning: PostgreSQL is not running on 127.0.0.1:5432" >&2
  fi
fi
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && exit 0
  sleep 0.2
done
exit 0
