"""The job store under damage and misuse: a corrupted SQLite file, a superseded job retried, a
database URL with a port that is not a number.

The damage is what a crash of the disk or a careless copy does: pages of ``jobs.sqlite3``
overwritten with random bytes while the service is stopped (or running). ``PRAGMA
quick_check`` (https://www.sqlite.org/pragma.html#pragma_quick_check) finds it.
"""

from __future__ import annotations

import io
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from srservice.jobs.store import JobStore
from tests.support import figures
from tests.support.environment import ROOT, free_port, poll
from tests.support.jobs import stored
from tests.support.reliability import phantom_part10
from tests.support.service import Service, c_store

pytestmark = pytest.mark.timeout(300)

SRSERVICE = [sys.executable, "-m", "srservice.cli"]
PAGE = 4096


def env_for(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRSERVICE_")}
    env.update({"SRSERVICE_DATA_DIR": str(data_dir), "SRSERVICE_HOST": "127.0.0.1",
                "SRSERVICE_MIN_FREE_DISK_MB": "0", "PYTHONPATH": str(ROOT)})
    env.update({f"SRSERVICE_{k.upper()}": v for k, v in settings.items()})
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(SRSERVICE + args, env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def cli(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``srservice ARGS`` in this process (start-up of a child costs seconds here)."""
    from srservice.cli.main import main

    for key in [k for k in os.environ if k.startswith("SRSERVICE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("SRSERVICE_"):
            monkeypatch.setenv(key, value)
    umask = os.umask(0o022)  # serve and worker set their own; keep this process's
    os.umask(umask)
    try:
        code = main(args)
    finally:
        os.umask(umask)
    out = capsys.readouterr()
    return code, out.out, out.err


def filled_store(data_dir: Path, jobs: int = 100) -> Path:
    """A job store with ``jobs`` jobs, checkpointed into the main file, then closed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = data_dir / "jobs.sqlite3"
    store = JobStore(f"sqlite:///{db}")
    for i in range(jobs):
        store.add_instance(stored(f"1.2.3.{i}", f"{i:064x}"), trigger="job")
    store.dispose()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def overwrite_pages(db: Path, first: int = 2, count: int = 3, seed: int = 10) -> None:
    """Overwrite ``count`` pages from page ``first`` (0-based; page 0 holds the header)."""
    rng = random.Random(seed)
    with db.open("r+b") as fh:
        fh.seek(PAGE * first)
        fh.write(rng.randbytes(PAGE * count))
        fh.flush()
        os.fsync(fh.fileno())


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("srservice: error:")]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_damaged_store_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    overwrite_pages(filled_store(data))
    env = env_for(data, port=str(free_port()))
    t0 = time.monotonic()
    serve = run(["serve", "--no-worker"], env)
    took = time.monotonic() - t0
    line = one_line_error(serve.stderr)
    assert serve.returncode == 2 and "job store damaged: PRAGMA quick_check" in line, line
    assert "listening" not in serve.stdout
    for command in (["worker"], ["check"]):
        code, _, err = cli(command, env, monkeypatch, capsys)
        assert code == 2 and one_line_error(err) == line, (command, err)
    code, out, err = cli(["jobs"], env, monkeypatch, capsys)
    assert code == 1 and "warning: job store damaged" in err and "STATE" in out, err
    figures.record("job store", "serve on a damaged store: exit status, time",
                   f"{serve.returncode}, {took:.1f} s")
    figures.record("job store", "serve on a damaged store: message", line)


def test_store_damaged_while_running_stops_the_listener(tmp_path: Path) -> None:
    """Not 0xA700 forever: the C-STORE at hand is refused, then serve stops with the reason.

    The damage is a table gone from under the running service (SQLite answers "no such
    table", result code SQLITE_ERROR: not busy, not locked); overwritten pages are not seen
    by a running process that holds them in its page cache.
    """
    service = Service(tmp_path, embedded_worker="false").start()
    assert service.serve is not None
    first = pydicom.dcmread(io.BytesIO(phantom_part10(frames=4, rows=64)))
    assert c_store(first, service.port) == 0x0000
    conn = sqlite3.connect(service.data_dir / "jobs.sqlite3")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("DROP TABLE instances")
    conn.close()
    statuses = []
    for k in range(3):
        ds = pydicom.dcmread(io.BytesIO(phantom_part10(frames=4, rows=64, seed=k + 1)))
        statuses.append(c_store(ds, service.port))
        if not service.serve.alive():
            break
        time.sleep(1.0)
    code = poll(lambda: service.serve.proc.poll() if service.serve else None, 30,
                "serve to stop on the damaged store")
    log = service.serve.log.read_text(errors="replace")
    assert code == 2, log[-2000:]
    assert "srservice: error: JobStoreDamagedError: job store damaged" in log, log[-2000:]
    assert statuses[0] == 0xA700 and set(statuses[1:]) <= {-1}, statuses
    assert c_store(first, service.port) == -1  # nobody listens any more
    service.serve.fh.close()
    service.serve = None  # stopped already
    figures.record("job store", "C-STORE after damage while running",
                   " ".join(f"0x{s:04X}" if s >= 0 else "no association" for s in statuses))


def test_retry_of_a_superseded_job_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = JobStore(f"sqlite:///{data / 'jobs.sqlite3'}")
    old = store.add_instance(stored("1.2.3.77", "a" * 64), trigger="job").job_id
    new = store.add_instance(stored("1.2.3.77", "b" * 64), trigger="job").job_id
    assert old is not None and new is not None
    store.claim_job(old, "host:1", stale_after_seconds=60)  # fails it: superseded
    store.dispose()
    code, out, err = cli(["retry", str(old)], env_for(data), monkeypatch, capsys)
    assert code != 0 and "re-queued" not in out, out
    assert f"superseded by job {new}" in err, err
    figures.record("job store", "srservice retry on a superseded job",
                   f"exit {code}: {err.strip()}")


def test_non_numeric_database_port_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    env = env_for(tmp_path / "data",
                  database_url="postgresql+psycopg://srs:secret@127.0.0.1:54x2/srservice")
    code, _, err = cli(["jobs"], env, monkeypatch, capsys)
    line = one_line_error(err)
    assert code == 2 and "SRSERVICE_DATABASE_URL" in line and "port" in line, line
    assert "secret" not in err
    figures.record("job store", "non-numeric port in SRSERVICE_DATABASE_URL", line)


def test_sweeper_stops_on_a_damaged_store(tmp_path: Path) -> None:
    """The sweeper meets the damage first when no C-STORE comes: it stops and says why."""
    from srservice.config import Settings
    from srservice.jobs.sweeper import Sweeper

    db = tmp_path / "jobs.sqlite3"
    store = JobStore(f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("DROP TABLE jobs")
    conn.close()
    sent: list[int] = []

    class Recorder:
        def analyze(self, job_id: int) -> bool:
            sent.append(job_id)
            return True

        def deliver(self, delivery_id: int) -> bool:
            sent.append(delivery_id)
            return True

    sweeper = Sweeper(Settings(data_dir=tmp_path), store, Recorder(), interval=0.1)
    sweeper.start()
    sweeper.join(10)
    assert not sweeper.is_alive() and sweeper.damaged is not None
    assert "no such table" in str(sweeper.damaged) and sent == []
    store.dispose()
