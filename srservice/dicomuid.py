"""DICOM Unique Identifier grammar (PS3.5 Section 9.1), checked before a UID touches a path.

A UID is a series of numeric components separated by ``.``; each component is ``0`` or a
digit string without a leading zero; the whole string is at most 64 characters (PS3.5 9.1,
"UID Encoding Rules"). Anything else (``/``, ``..``, letters, spaces, NUL, a trailing pad
byte that survived decoding) is refused with :class:`~srservice.errors.InvalidUIDError`.
"""

from __future__ import annotations

import re

from srservice.errors import InvalidUIDError

#: Maximum UID length, PS3.5 Section 9.1 (also the UI VR maximum, PS3.5 Table 6.2-1).
MAX_UID_LENGTH = 64

_COMPONENT = r"(?:0|[1-9][0-9]*)"
_UID_RE = re.compile(rf"{_COMPONENT}(?:\.{_COMPONENT})*")


def is_valid_uid(value: object) -> bool:
    """Return True when ``value`` is a string obeying the UID grammar of PS3.5 Section 9.1.

    Parameters
    ----------
    value : object
        Candidate UID (anything; non-strings are invalid).

    Returns
    -------
    bool
        True for e.g. ``"1.2.840.10008.5.1.4.1.1.3.1"``; False for ``"1.2.03"`` (leading
        zero), ``"1.2.3/../../etc"``, ``""``, ``"1..2"`` or a string longer than 64 characters.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and value.isascii()
        and _UID_RE.fullmatch(value) is not None
    )


def validate_uid(value: object, keyword: str) -> str:
    """Return ``value`` as ``str`` when it is a valid DICOM UID, else raise.

    Parameters
    ----------
    value : object
        Candidate UID, e.g. a data element value.
    keyword : str
        DICOM keyword of the element it came from (named in the error message).

    Returns
    -------
    str
        The UID unchanged.

    Raises
    ------
    InvalidUIDError
        When ``value`` violates PS3.5 Section 9.1; the message shows a bounded ``repr``.
    """
    if not is_valid_uid(value):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise InvalidUIDError(f"{keyword} {shown} is not a valid DICOM UID (PS3.5 9.1)")
    return str(value)
