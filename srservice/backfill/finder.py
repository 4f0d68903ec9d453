"""What the PACS holds: IVUS studies, their pullbacks, and our SRs already there.

Study Root C-FIND (PS3.4 C.6.2) through :func:`srservice.delivery.query.find`:

1. Studies: a STUDY-level query per modality (IVUS, IVOCT) on Modalities In Study
   (0008,0061), with Study Date range matching (PS3.4 C.2.2.2.5) for ``--since/--until``.
   A source marked ``+series`` (a PACS that does not match on Modalities In Study) gets a
   SERIES-level query on Modality (0008,0060) instead; the dates of its studies are then read
   with one STUDY-level query per study and filtered here.
2. Each study's series (Modality, Series Instance UID), then, for each IVUS series, its
   instances (SOP Class UID, Number of Frames): an instance is a pullback to score exactly when
   the intake would analyse it (:func:`srservice.jobs.intake.trigger_of`).
3. Our SR for a pullback is in the PACS when one of the study's SR series has the Series
   Instance UID derived from that source instance and the current algorithm version
   (:func:`srservice.reporting.uids.derived_uid`, purpose ``sr-series``).

Identifiers carry and request no patient attribute.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from srservice import ALGORITHM_VERSION
from srservice.config import Settings, Source
from srservice.delivery.query import find, identifier
from srservice.jobs.intake import trigger_of
from srservice.jobs.models import JobKind, Trigger
from srservice.reporting.uids import derived_uid

#: Modalities whose studies the backfill looks at (PS3.3 C.7.3.1.1.1).
MODALITIES = ("IVUS", "IVOCT")


def dicom_date(text: str | None) -> str | None:
    """Return ``YYYYMMDD`` for ``YYYY-MM-DD`` or ``YYYYMMDD`` (None stays None).

    Raises
    ------
    ValueError
        Not a date of either form.
    """
    if text is None or not text.strip():
        return None
    value = text.strip().replace("-", "")
    if not re.fullmatch(r"\d{8}", value):
        raise ValueError(f"{text!r} is not a date YYYY-MM-DD")
    return value


def date_range(since: str | None, until: str | None) -> str | None:
    """Return the DA range matching value ``since-until`` (PS3.4 C.2.2.2.5), or None."""
    if since is None and until is None:
        return None
    return f"{since or ''}-{until or ''}"


def _in_range(date: str | None, since: str | None, until: str | None) -> bool:
    if since is None and until is None:
        return True
    if not date:
        return False
    return (since is None or date >= since) and (until is None or date <= until)


def find_studies(source: Source, settings: Settings, *, since: str | None = None,
                 until: str | None = None) -> list[tuple[str, str | None]]:
    """Return ``(Study Instance UID, Study Date)`` of every IVUS/IVOCT study in range.

    Ordered by study date (studies without a date last), then UID.

    Raises
    ------
    QueryError
        The PACS cannot be queried.
    """
    dates = date_range(since, until)
    studies: dict[str, str | None] = {}
    if not source.series_level:
        queries = [identifier("STUDY", StudyInstanceUID=None, StudyDate=dates,
                              ModalitiesInStudy=m) for m in MODALITIES]
        for match in find(source, settings, queries):
            uid = str(match.get("StudyInstanceUID", "") or "")
            if uid:
                studies[uid] = str(match.get("StudyDate", "") or "") or None
    else:
        queries = [identifier("SERIES", StudyInstanceUID=None, SeriesInstanceUID=None,
                              Modality=m) for m in MODALITIES]
        uids = sorted({str(m.get("StudyInstanceUID", "") or "")
                       for m in find(source, settings, queries)} - {""})
        if dates is None:
            studies = dict.fromkeys(uids)
        else:
            per_study = [identifier("STUDY", StudyInstanceUID=uid, StudyDate=None)
                         for uid in uids]
            for match in find(source, settings, per_study):
                date = str(match.get("StudyDate", "") or "") or None
                if _in_range(date, since, until):
                    studies[str(match.StudyInstanceUID)] = date
    return sorted(studies.items(), key=lambda kv: (kv[1] is None, kv[1] or "", kv[0]))


@dataclass(frozen=True)
class Unit:
    """One analysis the service would make: a pullback instance or a single-frame series.

    ``uid`` is what the job store keys it by (the source SOP Instance UID of a pullback job,
    the Series Instance UID of a series job); ``sources`` are the instance UIDs our SR's UIDs
    may derive from (the pullback; every instance of a single-frame series).
    """

    kind: JobKind
    uid: str
    series: str
    sources: tuple[str, ...]
    rescore: bool = False
    """Recorded in the job store with a job of another algorithm version: analysed again from
    the spool instead of retrieved."""

    def sr_series_uids(self) -> set[str]:
        """Series Instance UIDs our SR of this unit has with the current algorithm version."""
        return {derived_uid(s, "sr-series", ALGORITHM_VERSION) for s in self.sources}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (kept in the job store's plan of the study)."""
        return {"kind": str(self.kind), "uid": self.uid, "series": self.series,
                "rescore": self.rescore}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Unit:
        """Inverse of :meth:`as_dict` (``sources`` are not kept)."""
        return cls(JobKind(d["kind"]), str(d["uid"]), str(d["series"]), (),
                   bool(d.get("rescore", False)))


@dataclass(frozen=True)
class StudyContents:
    """What a study holds, as far as the backfill cares."""

    units: tuple[Unit, ...]
    sr_series: frozenset[str]
    other: dict[str, int] = field(default_factory=dict)
    """Series that are not scored, by modality (for the reason of a study with none)."""

    def describe_other(self) -> str:
        """Return e.g. ``IVOCT x1, SR x2`` (``no series`` when empty)."""
        return ", ".join(f"{k} x{v}" for k, v in sorted(self.other.items())) or "no series"


def _frames(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def examine_study(source: Source, settings: Settings, study_uid: str) -> StudyContents:
    """Return the pullbacks of a study and the SR series it holds (two or more C-FINDs).

    Raises
    ------
    QueryError
        The PACS cannot be queried.
    """
    series = find(source, settings, [identifier("SERIES", StudyInstanceUID=study_uid,
                                                SeriesInstanceUID=None, Modality=None)])
    sr_series: set[str] = set()
    ivus: list[str] = []
    other: Counter[str] = Counter()
    for s in series:
        modality = str(s.get("Modality", "") or "").strip().upper()
        uid = str(s.get("SeriesInstanceUID", "") or "")
        if not uid:
            continue
        if modality == "SR":
            sr_series.add(uid)
        if modality == "IVUS":
            ivus.append(uid)
        else:
            other[modality or "unknown"] += 1
    units: list[Unit] = []
    if ivus:
        queries = [identifier("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=uid,
                              SOPInstanceUID=None, SOPClassUID=None, NumberOfFrames=None)
                   for uid in sorted(ivus)]
        singles: dict[str, list[str]] = {}
        for inst in find(source, settings, queries):
            sop = str(inst.get("SOPInstanceUID", "") or "")
            series_uid = str(inst.get("SeriesInstanceUID", "") or "")
            if not sop or series_uid not in ivus:
                continue
            trigger = trigger_of("IVUS", str(inst.get("SOPClassUID", "") or ""), _frames(inst))
            if trigger == Trigger.JOB:
                units.append(Unit(JobKind.PULLBACK, sop, series_uid, (sop,)))
            elif trigger == Trigger.SERIES:
                singles.setdefault(series_uid, []).append(sop)
        for series_uid, sops in sorted(singles.items()):
            units.append(Unit(JobKind.SERIES, series_uid, series_uid, tuple(sorted(sops))))
    return StudyContents(tuple(sorted(units, key=lambda u: u.uid)), frozenset(sr_series),
                         dict(other))
