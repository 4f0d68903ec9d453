"""Query/Retrieve as SCU: ask a PACS what it holds (C-FIND) and fetch from it (C-MOVE, C-GET).

Study Root Query/Retrieve Information Model (PS3.4 Annex C, C.6.2) over pynetdicom's public
API. The delivery asks a destination whether it already holds a report before sending it
again (:func:`held_instances`); the backfill (:mod:`srservice.backfill`) finds IVUS studies,
their series and instances, and retrieves them.

Identifiers never carry or request patient attributes: only UIDs, dates, modalities, SOP
classes and frame counts (nothing here can put a patient name into a log line).

Statuses (PS3.4 Tables C.4-1, C.4-2, C.4-3): Pending 0xFF00/0xFF01 carry a match or a
sub-operation count; Success 0x0000 ends the exchange; Warning 0xB000 (C-MOVE/C-GET: some
sub-operations failed) is reported with the counts; anything else raises. No response within
``settings.dimse_timeout`` aborts the association and raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import build_role, evt

from srservice import sopclasses
from srservice.config import Destination, Settings
from srservice.delivery.scu import associate, make_ae
from srservice.errors import QueryError, QueryNotSupportedError, RetrieveError

LOGGER = logging.getLogger(__name__)

#: C-FIND / C-MOVE / C-GET pending statuses (PS3.4 Tables C.4-1 to C.4-3).
PENDING = frozenset({0xFF00, 0xFF01})

#: Readable meaning of the failure statuses of PS3.4 Tables C.4-1 to C.4-3.
STATUS_TEXT = {
    0xA700: "out of resources",
    0xA701: "out of resources: unable to calculate number of matches",
    0xA702: "out of resources: unable to perform sub-operations",
    0xA801: "move destination unknown (the PACS does not know our AE title)",
    0xA900: "identifier does not match SOP class",
    0xAA00: "none of the frames requested were found",
    0xAA01: "unable to create new object for this SOP class",
    0xAA02: "unable to extract frames",
    0xAA03: "time-based request for a non-time-based object",
    0xAA04: "invalid request",
    0xB000: "sub-operations complete, one or more failures or warnings",
    0xC000: "unable to process",
    0xFE00: "cancelled",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0x0211: "unrecognized operation",
}


def status_text(code: int) -> str:
    """Return ``0xNNNN (meaning)`` for a Query/Retrieve status."""
    meaning = STATUS_TEXT.get(code) or ("unable to process" if 0xC000 <= code <= 0xCFFF
                                        else "failure")
    return f"0x{code:04X} ({meaning})"


def find(dest: Destination, settings: Settings, identifiers: Sequence[Dataset]) -> list[Dataset]:
    """Send each C-FIND identifier on one association and return every match.

    Parameters
    ----------
    dest : Destination
        The PACS.
    settings : Settings
        Our AE title and time-outs.
    identifiers : sequence of Dataset
        Identifiers with Query/Retrieve Level set (PS3.4 C.4.1.1.3).

    Raises
    ------
    QueryNotSupportedError
        The PACS accepted no Study Root FIND context.
    QueryError
        No connection, association refused, a failure status or no response.
    """
    ae = make_ae(settings)
    ae.add_requested_context(sopclasses.STUDY_ROOT_FIND)
    assoc = associate(ae, dest, settings, error=QueryError)
    matches: list[Dataset] = []
    started = time.monotonic()
    try:
        if not any(cx.abstract_syntax == sopclasses.STUDY_ROOT_FIND
                   for cx in assoc.accepted_contexts):
            raise QueryNotSupportedError(f"{dest}: Study Root C-FIND not supported (the "
                                         "presentation context was rejected)")
        for identifier in identifiers:
            for status, match in assoc.send_c_find(identifier, sopclasses.STUDY_ROOT_FIND):
                if not status or "Status" not in status:
                    if time.monotonic() - started < settings.dimse_timeout:
                        raise QueryError(f"{dest}: the PACS aborted the association without a "
                                         "C-FIND response (refused; see the PACS's log)")
                    raise QueryError(f"{dest}: no C-FIND response within "
                                     f"{settings.dimse_timeout:g} s (association aborted)")
                code = int(status.Status)
                if code in PENDING:
                    if match is not None:
                        matches.append(match)
                    continue
                if code != 0x0000:
                    raise QueryError(f"{dest}: C-FIND failed with status {status_text(code)}")
    finally:
        if assoc.is_established:
            assoc.release()
    return matches


def identifier(level: str, **keys: Any) -> Dataset:
    """Return a C-FIND/C-MOVE/C-GET identifier at ``level`` with the given keys.

    ``None`` values become universal matching (empty: return the attribute, PS3.4 C.2.2.2.3).
    """
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, "" if value is None else value)
    return ds


@dataclass(frozen=True)
class InstanceRef:
    """The three UIDs that locate an instance in the Study Root hierarchy."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str


def held_instances(dest: Destination, settings: Settings,
                   refs: Iterable[InstanceRef]) -> set[str]:
    """Return the SOP Instance UIDs among ``refs`` that ``dest`` holds (C-FIND, IMAGE level).

    One IMAGE-level query per instance with all three unique keys (PS3.4 C.4.1.2.1,
    hierarchical search), on one association.

    Raises
    ------
    QueryNotSupportedError, QueryError
        As :func:`find`: the destination cannot be asked.
    """
    wanted = list(refs)
    queries = [identifier("IMAGE", StudyInstanceUID=r.study_instance_uid,
                          SeriesInstanceUID=r.series_instance_uid,
                          SOPInstanceUID=r.sop_instance_uid) for r in wanted]
    found = find(dest, settings, queries) if queries else []
    uids = {r.sop_instance_uid for r in wanted}
    return {str(m.SOPInstanceUID) for m in found if str(m.get("SOPInstanceUID", "")) in uids}


@dataclass(frozen=True)
class RetrieveResult:
    """The final counts of a C-MOVE or C-GET (PS3.4 C.4.2.1.6, C.4.3.1.5)."""

    status: int
    completed: int
    failed: int
    warning: int


def _final(dest: Destination, what: str, responses: Iterable[tuple[Dataset, Dataset | None]],
           settings: Settings) -> RetrieveResult:
    last: Dataset | None = None
    started = time.monotonic()
    for status, _ in responses:
        if not status or "Status" not in status:
            if time.monotonic() - started < settings.dimse_timeout:
                raise RetrieveError(f"{dest}: the PACS aborted the association without a "
                                    f"{what} response (refused; see the PACS's log)")
            raise RetrieveError(f"{dest}: no {what} response within "
                                f"{settings.dimse_timeout:g} s (association aborted)")
        last = status
        if int(status.Status) not in PENDING:
            break
    if last is None:
        raise RetrieveError(f"{dest}: no {what} response")
    code = int(last.Status)
    result = RetrieveResult(code, int(last.get("NumberOfCompletedSuboperations", 0) or 0),
                            int(last.get("NumberOfFailedSuboperations", 0) or 0),
                            int(last.get("NumberOfWarningSuboperations", 0) or 0))
    if code not in (0x0000, 0xB000):
        raise RetrieveError(f"{dest}: {what} refused with status {status_text(code)}")
    if code == 0xB000 and result.completed == 0:
        raise RetrieveError(f"{dest}: {what} stored nothing: {result.failed} sub-operations "
                            f"failed (status {status_text(code)})")
    return result


def move(source: Destination, settings: Settings, keys: Dataset,
         move_destination: str) -> RetrieveResult:
    """C-MOVE what ``keys`` identifies from ``source`` to the AE ``move_destination``.

    The PACS opens its own association to ``move_destination`` (it must know that AE title's
    address) and C-STOREs every instance there (PS3.4 C.4.2).

    Raises
    ------
    RetrieveError
        Connection, refusal, a failure status, no response, or nothing stored.
    """
    ae = make_ae(settings)
    ae.add_requested_context(sopclasses.STUDY_ROOT_MOVE)
    assoc = associate(ae, source, settings, error=RetrieveError)
    try:
        if not any(cx.abstract_syntax == sopclasses.STUDY_ROOT_MOVE
                   for cx in assoc.accepted_contexts):
            raise RetrieveError(f"{source}: Study Root C-MOVE not supported (the presentation "
                                "context was rejected)")
        return _final(source, "C-MOVE", assoc.send_c_move(keys, move_destination,
                                                            sopclasses.STUDY_ROOT_MOVE),
                      settings)
    finally:
        if assoc.is_established:
            assoc.release()


def get(source: Destination, settings: Settings, keys: Dataset,
        on_store: Callable[[Any], int]) -> RetrieveResult:
    """C-GET what ``keys`` identifies from ``source``.

    Each instance comes back on the same association and is handed to ``on_store(event)``
    (which returns the C-STORE status).

    We propose the analysed storage classes with the SCP role (PS3.7 D.3.3.4, SCP/SCU Role
    Selection), so the PACS sends only IVUS instances.

    Raises
    ------
    RetrieveError
        Connection, refusal, a failure status, no response, or nothing stored.
    """
    ae = make_ae(settings)
    ae.add_requested_context(sopclasses.STUDY_ROOT_GET)
    roles = []
    for uid in sorted(sopclasses.ANALYSED):
        ae.add_requested_context(uid)
        roles.append(build_role(uid, scp_role=True))
    assoc = associate(ae, source, settings, error=RetrieveError, ext_neg=roles,
                      evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        if not any(cx.abstract_syntax == sopclasses.STUDY_ROOT_GET
                   for cx in assoc.accepted_contexts):
            raise RetrieveError(f"{source}: Study Root C-GET not supported (the presentation "
                                "context was rejected)")
        return _final(source, "C-GET", assoc.send_c_get(keys, sopclasses.STUDY_ROOT_GET),
                      settings)
    finally:
        if assoc.is_established:
            assoc.release()
