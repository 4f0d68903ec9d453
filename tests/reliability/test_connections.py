"""Connections that never associate, and associations that never end (promise P14 of
docs/reliability.md).

- Raw TCP connections that never send an A-ASSOCIATE-RQ are counted apart from associations,
  limited per source address and in total (more are closed at once), dropped after
  ``unassociated_timeout``, and audited with the peer address; legitimate senders keep every
  association slot.
- An association that trickles valid PDUs (C-ECHO every half second) is aborted once
  ``association_time_limit`` has passed.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from srservice.sopclasses import VERIFICATION
from tests.support import figures
from tests.support.datasets import US_MULTIFRAME
from tests.support.listener import RunningScp
from tests.support.reliability import EXPLICIT_LE, Sender, phantom_part10, with_new_uids

pytestmark = pytest.mark.timeout(120)

CONTEXTS = [(US_MULTIFRAME, EXPLICIT_LE), (VERIFICATION, EXPLICIT_LE)]


def audit_records(running: RunningScp) -> list[dict[str, object]]:
    path = running.settings.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Silent:
    """Raw TCP connections that never send a byte, from a loopback alias."""

    def __init__(self, port: int, *sources: tuple[str, int]) -> None:
        self.socks: list[tuple[float, socket.socket]] = []
        for host, count in sources:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                                source_address=(host, 0))
                self.socks.append((time.monotonic(), sock))

    def lifetimes(self, within: float) -> list[float | None]:
        """Seconds each connection lived until the listener closed it (None: still open)."""
        result: list[float | None] = [None] * len(self.socks)
        t_end = time.monotonic() + within
        while time.monotonic() < t_end and None in result:
            open_ = {sock: i for i, (_, sock) in enumerate(self.socks) if result[i] is None}
            readable, _, _ = select.select(list(open_), [], [], 0.1)
            for sock in readable:
                try:
                    data = sock.recv(1024)
                except OSError:
                    data = b""
                if data == b"":
                    i = open_[sock]
                    result[i] = time.monotonic() - self.socks[i][0]
        for _, sock in self.socks:
            sock.close()
        return result


def test_unassociated_connections_limited_dropped_and_audited(
        scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    deadline = 3.0
    running = scp(max_associations=3, max_unassociated_connections=6,
                  max_unassociated_per_host=4, unassociated_timeout=deadline,
                  acse_timeout=10.0)
    instances = [with_new_uids(phantom_part10()) for _ in range(4)]
    # Phase 1: one hostile address opens 60 silent connections: 4 are held, 56 closed at once;
    # every association slot stays free for the legitimate senders.
    t0 = time.monotonic()
    first = Silent(running.port, ("127.0.0.2", 60))
    opened_s = time.monotonic() - t0
    senders = [Sender(running.port, CONTEXTS, tmp_path / f"s{i}", timeout=10) for i in range(3)]
    assert [s.established for s in senders] == [True, True, True], [
        s.rejection() if s.assoc.is_rejected else None for s in senders]
    assert [s.send(inst) for s, inst in zip(senders, instances, strict=False)] == [0, 0, 0]
    # The association limit still holds for associated connections (2-3-2).
    extra = Sender(running.port, CONTEXTS, tmp_path / "x", timeout=10)
    assert not extra.established and extra.rejection() == (2, 3, 2)
    extra.release()
    for s in senders:
        s.release()
    phase1_s = time.monotonic() - t0
    assert phase1_s < deadline, f"phase 1 took {phase1_s:.1f} s (machine too slow)"
    lives1 = first.lifetimes(deadline + 5.0)
    # Phase 2: two more addresses fill the total (4 + 2), the rest are closed at once; while
    # the total is full a legitimate connection is refused too, until the deadline frees it.
    second = Silent(running.port, ("127.0.0.3", 10), ("127.0.0.4", 10))
    blocked = Sender(running.port, CONTEXTS, tmp_path / "b", timeout=10)
    assert not blocked.established
    blocked.release()
    lives2 = second.lifetimes(deadline + 5.0)
    late_sender = Sender(running.port, CONTEXTS, tmp_path / "l", timeout=10)
    assert late_sender.established and late_sender.send(instances[3]) == 0
    late_sender.release()

    for lives, held in ((lives1, 4), (lives2, 6)):
        assert None not in lives, "a silent connection was never closed"
        late = sorted(d for d in lives if d is not None and d > 1.0)
        assert len(late) == held, late
        assert all(deadline - 0.5 < d < deadline + 2.5 for d in late), late
        assert all(d is not None and d < 1.0 for d in lives if d not in late)
    records = audit_records(running)
    refused = [r for r in records if r["event"] == "connection-refused"]
    by_host = {h: [r for r in refused if r["peer_host"] == h]
               for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")}
    assert len(by_host["127.0.0.2"]) == 56 and len(by_host["127.0.0.3"]) == 6
    assert len(by_host["127.0.0.4"]) == 8 and len(by_host["127.0.0.1"]) == 1
    assert all("max_unassociated_per_host" in str(r["reason"])
               for r in by_host["127.0.0.2"] + by_host["127.0.0.3"])
    assert all("max_unassociated_connections" in str(r["reason"])
               for r in by_host["127.0.0.4"] + by_host["127.0.0.1"])
    opened = [r for r in records if r["event"] == "connection-opened"]
    closed = [r for r in records if r["event"] == "connection-closed"
              and r["peer_host"] != "127.0.0.1"]
    assert {r["peer_host"] for r in opened} == {"127.0.0.1", "127.0.0.2", "127.0.0.3",
                                               "127.0.0.4"}
    assert all(isinstance(r["peer_port"], int) for r in opened + refused)
    assert len(closed) == 10 and not any(r["associated"] for r in closed)
    assert all(deadline - 0.5 < float(str(r["seconds"])) < deadline + 2.5 for r in closed)
    held1 = sorted(d for d in lives1 if d is not None and d > 1.0)
    figures.record("connections", "60 silent sockets from one address (limit 4/address)",
                   f"56 closed at once, 4 closed after {held1[0]:.1f}-{held1[-1]:.1f} s",
                   f"(opened in {opened_s:.2f} s; unassociated_timeout {deadline:g} s)")
    figures.record("connections", "legitimate senders meanwhile (max_associations 3)",
                   "3 of 3 associated and stored 0x0000; a 4th: A-ASSOCIATE-RJ 2-3-2")
    figures.record("connections", "+10 +10 from two more addresses (6 in all)",
                   "4 + 2 held, 14 closed at once; a legitimate connection too until the "
                   "deadline, then served")


def test_association_time_limit(scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    limit = 3.0
    running = scp(association_time_limit=limit, network_timeout=5.0)
    sender = Sender(running.port, CONTEXTS, tmp_path / "s", timeout=10)
    assert sender.established
    t0 = time.monotonic()
    echoes = 0
    while time.monotonic() - t0 < 20.0 and sender.assoc.is_established:
        status = sender.assoc.send_c_echo()
        if "Status" in status and int(status.Status) == 0:
            echoes += 1
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    assert sender.assoc.is_aborted, f"association still up after {elapsed:.1f} s"
    assert limit - 0.5 <= elapsed <= limit + 3.0
    assert echoes >= 3  # the trickled PDUs were valid and answered until the limit
    sender.release()
    records = audit_records(running)
    reasons = [str(r.get("reason")) for r in records if r["event"] == "association-aborted"]
    assert any("association time limit" in r for r in reasons), reasons
    # A new association is served at once.
    again = Sender(running.port, CONTEXTS, tmp_path / "t", timeout=10)
    assert again.established and again.send(with_new_uids(phantom_part10())) == 0
    again.release()
    figures.record("connections", f"C-ECHO every 0.5 s, association_time_limit {limit:g} s",
                   f"aborted after {elapsed:.1f} s ({echoes} echoes answered)")


def test_burst_of_legitimate_associations_from_one_address(
        scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    """The per-address limit counts only connections still silent: a burst of associations
    from one PACS (each sends its A-ASSOCIATE-RQ at once) is not refused."""
    burst = 40
    running = scp(max_associations=burst)  # default unassociated limits (8 per address)
    barrier = threading.Barrier(burst)
    established: list[bool] = []

    def associate(k: int) -> None:
        barrier.wait()
        sender = Sender(running.port, CONTEXTS, tmp_path / f"b{k}", timeout=20)
        established.append(sender.established)
        sender.release()

    t0 = time.monotonic()
    threads = [threading.Thread(target=associate, args=(k,)) for k in range(burst)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.monotonic() - t0
    refused = [r for r in audit_records(running) if r["event"] == "connection-refused"]
    figures.record("connections", f"{burst} simultaneous associations from one address",
                   f"{sum(established)} established, {len(refused)} refused in {elapsed:.1f} s")
    assert established == [True] * burst and refused == []
