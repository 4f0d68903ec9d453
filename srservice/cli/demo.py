"""``srservice demo``: send a phantom pullback to a running service and print its score.

The demo writes a synthetic pullback (:mod:`srservice.phantom`) with a known expected IVUS
calcium score, C-STOREs it to the service with pynetdicom, then polls the job store (so it
runs on the service's host, with the same settings, which is the embedded mode's normal
case) until the job is delivered, failed or dead, and prints the score next to the
phantom's expected score.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pynetdicom import AE

from srservice.config import Settings
from srservice.errors import DeliveryError, TransientError
from srservice.jobs.models import TERMINAL_JOB_STATES, JobState
from srservice.jobs.store import JobStore
from srservice.jobs.views import JobView

if TYPE_CHECKING:  # the phantom (numpy, scipy) is imported when the demo runs
    from srservice.phantom import CaseSpec, PhantomCase


def demo_spec(*, seed: int = 11, rate_mm_s: float = 5.0) -> CaseSpec:
    """Return a 256 x 256 pullback of about 60 frames with one lesion of all four components.

    9 mm of calcium, 7 mm of it > 270 degrees, 1 mm circumferential, a calcified nodule and a
    3.0 mm vessel (Zhang et al. 2021: expected score 4).
    """
    from srservice.phantom import CaseSpec, LesionSpec

    lesion = LesionSpec(center_mm=0.7 + 4.5, length_mm=9.0, max_arc_deg=360, over_270_mm=7.0,
                        circumferential_mm=1.0, nodule=True, protrusion_mm=0.45,
                        vessel_diameter_mm=3.0)
    spacing = rate_mm_s / 30.0
    frames = int((lesion.length_mm + 1.4) / spacing) + 1
    return CaseSpec(name="demo", seed=seed, rows=256, frame_count=frames,
                    pullback_rate_mm_s=rate_mm_s, lesions=(lesion,))


def demo_case() -> PhantomCase:
    """Return the demo's phantom case (deterministic)."""
    from srservice.phantom import make_case

    return make_case(demo_spec())


def send_file(path: Path, *, host: str, port: int, aec: str, aet: str,
              timeout: float = 30.0) -> int:
    """C-STORE one file and return the status (raises DeliveryError without a response)."""
    ds = dcmread(path)
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate(host, port, ae_title=aec)
    if not assoc.is_established:
        raise DeliveryError(f"{aec}@{host}:{port}: association not established")
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    if not status or "Status" not in status:
        raise DeliveryError(f"{aec}@{host}:{port}: no C-STORE response")
    return int(status.Status)


def wait_for_job(store: JobStore, sop_instance_uid: str, timeout: float) -> JobView | None:
    """Poll the job store until the instance's newest job is terminal (or the deadline)."""
    deadline = time.monotonic() + timeout
    job: JobView | None = None
    while time.monotonic() < deadline:
        try:
            jobs = store.list_jobs(sop_instance_uid=sop_instance_uid, limit=1)
        except TransientError:
            jobs = []
        job = jobs[0] if jobs else None
        if job is not None and job.state in TERMINAL_JOB_STATES:
            return job
        time.sleep(0.5)
    return job


def run_demo(settings: Settings, *, host: str, port: int, aec: str, aet: str, timeout: float,
             out_dir: Path | None = None) -> int:
    """Run the demo; return 0 when the report was delivered."""
    from srservice.phantom.writer import write_pullback

    case = demo_case()
    with tempfile.TemporaryDirectory(prefix="srservice-demo-") as tmp:
        path = write_pullback(case, (out_dir or Path(tmp)) / "phantom-pullback.dcm")
        uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        print(f"sending phantom pullback ({case.frames.shape[0]} frames, expected IVUS calcium "
              f"score {case.truth.expected_score}) to {aec}@{host}:{port}")
        status = send_file(path, host=host, port=port, aec=aec, aet=aet)
    print(f"C-STORE status 0x{status:04X}")
    if status != 0:
        return 1
    job = wait_for_job(JobStore(settings.effective_database_url), uid, timeout)
    if job is None:
        print("no job was recorded for the pullback (is the demo using the service's "
              "SRSERVICE_DATA_DIR / SRSERVICE_DATABASE_URL?)")
        return 1
    print(f"job {job.id}: {job.state}{': ' + job.reason if job.reason else ''}")
    if job.score_total is not None or job.sr_path:
        print(f"IVUS calcium score: {job.score_total} (phantom's expected score "
              f"{case.truth.expected_score}); report in {job.output_dir}")
    return 0 if job.state == JobState.DELIVERED else 1


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Send a phantom pullback to a running service and print the score when it is done."""
    return run_demo(settings, host=args.host, port=args.port or settings.port, aec=args.aec
                    or settings.ae_title, aet=args.aet, timeout=args.timeout,
                    out_dir=Path(args.keep) if args.keep else None)


def add_parser(sub: Any) -> None:
    """Register ``demo``."""
    p = sub.add_parser("demo", help="send a phantom pullback to a running service",
                       description="Write a synthetic IVUS pullback, C-STORE it to a running "
                       "service, wait for its job to finish (polling the job store, so run it "
                       "on the service's host with the same settings) and print the score.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help="service port (default SRSERVICE_PORT)")
    p.add_argument("--aec", help="called AE title (default SRSERVICE_AE_TITLE)")
    p.add_argument("--aet", default="SRDEMO", help="our calling AE title")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    p.add_argument("--keep", metavar="DIR", help="keep the phantom file in DIR")
    p.set_defaults(func=cmd_demo)
