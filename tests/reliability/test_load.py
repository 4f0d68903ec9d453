"""Load (docs/reliability.md, P1 and P3): N >= 20 concurrent associations sending M instances
each (multi-frame IVUS phantom pullbacks mixed with small Secondary Capture objects) to
``srservice serve`` while separate Celery workers (a private redis-server as the broker)
analyse and deliver to a real Orthanc. Every Success-acknowledged instance must be on disk
byte for byte; every IVUS instance must end with exactly one delivered report (one job, one SR
in the PACS).

CI: 20 associations x 3 instances (1 pullback + 2 small). ``SRSERVICE_LONG_RUN=1``: 50 x 6.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import figures
from tests.support.orthanc import OrthancServer
from tests.support.reliability import LONG_RUN
from tests.support.service import Service
from tests.support.workload import (
    QueueSampler,
    ivus_instance,
    ledger,
    send_concurrently,
    small_object,
    wait_terminal,
)

ASSOCIATIONS = 50 if LONG_RUN else 20
PER_ASSOCIATION = 6 if LONG_RUN else 3
IVUS_PER_ASSOCIATION = 2 if LONG_RUN else 1

pytestmark = pytest.mark.timeout(3600 if LONG_RUN else 420)


def test_concurrent_associations_with_workers(tmp_path: Path,
                                              make_service: Callable[..., Service],
                                              redis_url: str, orthanc: OrthancServer) -> None:
    service = make_service(broker_url=redis_url, destinations=orthanc.destination,
                           embedded_worker="false", non_ivus_policy="store",
                           max_associations=str(ASSOCIATIONS + 5), log_level="WARNING").start()
    service.start_worker()
    service.start_worker()
    batches = []
    for k in range(ASSOCIATIONS):
        big = k % 5 == 0  # every fifth association sends a larger pullback
        batch = [ivus_instance(frames=64 if big else 24, rows=256 if big else 160, seed=k + j)
                 for j in range(IVUS_PER_ASSOCIATION)]
        batch += [small_object() for _ in range(PER_ASSOCIATION - IVUS_PER_ASSOCIATION)]
        batches.append(batch)
    total_bytes = sum(len(i.data) for b in batches for i in b)
    t0 = time.monotonic()
    with QueueSampler(service, redis_url) as sampler:
        sent = send_concurrently(service.port, batches, tmp_path / "send")
        ivus_uids = [i.sop_instance_uid for i in sent.acknowledged
                     if i.sop_class_uid.endswith(".3.1")]
        wait_terminal(service, ivus_uids, timeout=3000 if LONG_RUN else 300)
    total_s = time.monotonic() - t0
    assert sent.errors == [], sent.errors[:5]
    count = ASSOCIATIONS * PER_ASSOCIATION
    assert len(sent.statuses) == count
    assert all(s == 0x0000 for s in sent.statuses.values()), sent.statuses
    # Reports reach Orthanc asynchronously after 'delivered': wait for the SR count.
    expected_srs = ASSOCIATIONS * IVUS_PER_ASSOCIATION
    orthanc.wait_for(lambda found: sum(
        1 for i in found if i.get("Modality") == "SR") >= expected_srs, 120, "all SRs")
    books = ledger(service, sent, orthanc=orthanc)
    figures.record("load", "associations x instances", f"{ASSOCIATIONS} x {PER_ASSOCIATION}")
    figures.record("load", "instances acknowledged", books.acknowledged)
    figures.record("load", "IVUS pullbacks / reports delivered",
                   f"{books.ivus} / {books.delivered}")
    figures.record("load", "store throughput", count / sent.seconds, "instances/s")
    figures.record("load", "store throughput (bytes)", total_bytes / 2**20 / sent.seconds,
                   "MiB/s")
    figures.record("load", "time to last report", total_s, "s")
    figures.record("load", "report throughput", books.delivered / total_s * 60, "reports/min")
    figures.record("load", "max queue depth (Redis LLEN / jobs queued)",
                   f"{sampler.max_llen} / {sampler.max_queued}")
    figures.record("load", "lost / duplicated reports / bad on disk",
                   f"{books.lost} / {books.duplicated_reports} / {books.bad_on_disk}")
    assert books.bad_on_disk == 0, books.details[:10]
    assert books.lost == 0 and books.failed == 0, books.details[:10]
    assert books.duplicated_reports == 0, books.details[:10]
    assert books.delivered == books.ivus == expected_srs
