"""One exception base for the whole service, and the one place that maps it to outcomes.

Every failure the service can explain is a :class:`SrServiceError`. Each subclass names the
outcome it leads to: a DIMSE status for the sender (PS3.4 Annex B.2.3, C-STORE statuses), a
retry of the Celery task, or a failed job with a readable reason for the operator.
"""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    """What the service does with a failure."""

    RETRY = "retry"
    """Transient: try again later (network, broker, database, PACS)."""
    FAIL = "fail"
    """Permanent for this input: mark the job failed with the reason."""


class SrServiceError(Exception):
    """Base of every error the service raises on purpose.

    Attributes
    ----------
    dimse_status : int
        C-STORE status returned to a sender when this error happens while storing
        (PS3.4 Table B.2-1). 0xC000-0xCFFF "Cannot understand", 0xA700 "Out of resources".
    outcome : Outcome
        What a worker does with a job that raised it.
    """

    dimse_status: int = 0xC000
    outcome: Outcome = Outcome.FAIL


class ConfigError(SrServiceError):
    """A setting is missing or invalid; the message names the ``SRSERVICE_*`` variable."""


class InvalidDicomError(SrServiceError):
    """The dataset cannot be decoded or lacks what the operation needs (status 0xC210)."""

    dimse_status = 0xC210


class HeaderTooLargeError(InvalidDicomError):
    """The data set header (before Pixel Data) has more bytes or elements than allowed.

    Status 0xC210 ("Cannot understand"), not 0xA700: the object will never fit, so a sender
    must not retry it (PS3.4 Table B.2-1; 0xA7xx invites a retry later).
    """

    dimse_status = 0xC210


class InvalidUIDError(InvalidDicomError):
    """A UID is not a valid DICOM UID (PS3.5 Section 9.1); it never touches a path."""

    dimse_status = 0xC211


class InstanceMismatchError(InvalidDicomError):
    """The data set's SOP Instance UID differs from the command's Affected SOP Instance UID.

    Status 0xC212 ("Cannot understand" range, PS3.4 Table B.2-1).
    """

    dimse_status = 0xC212


class DataSetMismatchError(InvalidDicomError):
    """The data set's SOP Class UID differs from the command's (PS3.4 B.2.3 status 0xA900)."""

    dimse_status = 0xA900


class UnsupportedObjectError(SrServiceError):
    """The SOP Class is not one the service accepts (PS3.4 status 0x0122, refused SOP class)."""

    dimse_status = 0x0122


class OutOfResourcesError(SrServiceError):
    """Disk full or below the free-space watermark (status 0xA700)."""

    dimse_status = 0xA700
    outcome = Outcome.RETRY


class NotAssessableError(SrServiceError):
    """The pullback cannot be analysed at all (no frames, not greyscale-convertible, ...)."""


class OutputWriteError(SrServiceError):
    """An output directory or a file in it cannot be written (permissions, disk)."""


class PduRefusedError(SrServiceError):
    """The listener refuses a PDU (too long, or not complete within its deadline).

    The association is aborted (A-ABORT, source service provider, PS3.8 Table 9-26) with
    :attr:`diagnostic` as the reason; the error never leaves the listener's PDU reader.

    Parameters
    ----------
    message : str
        What was wrong, for the audit record.
    diagnostic : int
        A-ABORT reason/diagnostic (PS3.8 Table 9-26), e.g. 0x06 "invalid-PDU-parameter value".
    """

    def __init__(self, message: str, diagnostic: int) -> None:
        super().__init__(message)
        self.diagnostic = diagnostic


class TransientError(SrServiceError):
    """A dependency is temporarily unavailable (database, broker); try again later."""

    dimse_status = 0xA700
    outcome = Outcome.RETRY


class JobStoreDamagedError(SrServiceError):
    """The job store itself is damaged (not busy, locked or unreachable).

    SQLite ``PRAGMA quick_check`` finds errors, the file is not a database ("database disk
    image is malformed", "file is not a database"), or a table is missing.

    Not transient: waiting does not repair it. ``srservice serve`` and ``srservice worker``
    refuse to start with this one-line reason; a running ``serve`` answers the C-STORE at hand
    0xA700 (the instance stays in the spool) and then stops, so senders meet a closed port
    and the operator the reason, instead of 0xA700 forever.
    """

    dimse_status = 0xA700
    outcome = Outcome.RETRY


class DeliveryError(TransientError):
    """A destination refused or could not be reached; retried with backoff until the deadline."""


class QueryError(DeliveryError):
    """A C-FIND to a PACS failed.

    No connection, a refused association, a failure status (PS3.4 Table C.4-1) or no
    response within the DIMSE time-out.
    """


class QueryNotSupportedError(QueryError):
    """The PACS accepts no Study Root Query/Retrieve - FIND context (PS3.4 C.6.2)."""


class RetrieveError(DeliveryError):
    """A C-MOVE or C-GET from a PACS failed or stored nothing.

    Refused, a failure status (PS3.4 Tables C.4-2, C.4-3), failed sub-operations or no
    response within the time-out.
    """


def dimse_status_for(exc: BaseException) -> int:
    """Return the C-STORE status for an exception raised while storing.

    Parameters
    ----------
    exc : BaseException
        Whatever the store handler caught.

    Returns
    -------
    int
        The error's own status for a :class:`SrServiceError`; 0xA700 for ``OSError`` (disk,
        PS3.4 B.2.3 "Refused: Out of Resources"); 0xC210 for anything else, since the
        dataset could not be processed.
    """
    if isinstance(exc, SrServiceError):
        return exc.dimse_status
    if isinstance(exc, OSError):
        return 0xA700
    return 0xC210


def outcome_for(exc: BaseException) -> Outcome:
    """Return what a worker does with a job that raised ``exc``.

    Parameters
    ----------
    exc : BaseException
        The exception raised by a task body.

    Returns
    -------
    Outcome
        The error's own outcome for a :class:`SrServiceError`; RETRY for connection and
        time-out errors from libraries; FAIL for anything else (a bug or bad input must
        show up as a failed job with its reason, not loop forever).
    """
    if isinstance(exc, SrServiceError):
        return exc.outcome
    if isinstance(exc, ConnectionError | TimeoutError):
        return Outcome.RETRY
    return Outcome.FAIL


def reason_for(exc: BaseException) -> str:
    """Return a one-line, operator-readable reason for a failure (no traceback, no PHI)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
