"""Deterministic UIDs for the outputs, so that re-running an analysis reproduces its objects.

Every output UID is ``2.25.<n>`` (PS3.5 Annex B.2, UUID-derived UID) where ``n`` is the
integer value of the name-based (version 5, RFC 4122 / ITU-T X.667) UUID of
``"srservice|<source SOP Instance UID>|<algorithm version>|<purpose>"`` in the OID namespace.
The same input analysed by the same algorithm version therefore gets the same Series
and SOP Instance UIDs, which makes re-delivery to PACS idempotent; a new algorithm version gets
new UIDs (a new result, not an overwrite).

Superseding reports: when the same source SOP Instance UID arrives
again with different content, the new report is made with a ``revision`` (a content hash
prefix) and every UID is derived with ``version = "<algorithm version>+<revision>"``
(:func:`output_version`), so the PACS receives new objects instead of a conflicting copy of
the earlier ones.
"""

from __future__ import annotations

import uuid

from srservice import ALGORITHM_VERSION


def output_version(revision: str | None = None) -> str:
    """Return the version string output UIDs are derived with.

    Parameters
    ----------
    revision : str or None
        Revision of a superseding report (``None`` or ``""``: the first report).

    Returns
    -------
    str
        ``ALGORITHM_VERSION`` without a revision, else ``f"{ALGORITHM_VERSION}+{revision}"``.
    """
    return f"{ALGORITHM_VERSION}+{revision}" if revision else ALGORITHM_VERSION


def derived_uid(source_sop_instance_uid: str, purpose: str,
                version: str = ALGORITHM_VERSION) -> str:
    """Return a UID derived from the source instance, the algorithm version and a purpose.

    Parameters
    ----------
    source_sop_instance_uid : str
        SOP Instance UID of the analysed IVUS pullback.
    purpose : str
        What the UID identifies, e.g. ``"sr-series"``, ``"sr-instance"``, ``"lesion-1"``.
    version : str
        Algorithm version (default: the running version).

    Returns
    -------
    str
        ``"2.25."`` followed by a decimal integer < 2**128 (at most 45 characters, within the
        64-character limit of PS3.5 Section 9.1).
    """
    name = f"srservice|{source_sop_instance_uid}|{version}|{purpose}"
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"
