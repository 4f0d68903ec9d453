"""A single-frame IVUS series (Ultrasound Image Storage, one frame per instance) as one pullback.

Some consoles send a pullback as a series of single-frame instances. The frames are decoded
one by one with :func:`srservice.dicomio.load_pullback` and stacked in Instance Number order
(PS3.3 C.7.6.1.1.1; SOP Instance UID order breaks ties). Pixel spacing comes from the first
instance; the frame spacing from the first instance that has one, else the site default.
The report notes that the pullback was assembled from a series. The result keeps every
instance's SOP Instance UID and header (without Pixel Data) in frame order
(``LoadedPullback.frame_sop_instance_uids`` / ``frame_headers``), so the SR references each
frame's own instance.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from srservice.dicomio import LoadedPullback, load_pullback
from srservice.errors import InvalidDicomError


def _order(loaded: LoadedPullback) -> tuple[int, str]:
    number = loaded.header.get("InstanceNumber")
    try:
        value = int(number) if number not in (None, "") else 2**31
    except (TypeError, ValueError):
        value = 2**31
    return value, loaded.sop_instance_uid


def load_series(paths: Sequence[str | os.PathLike[str]], *,
                default_pixel_spacing_mm: float | None = None,
                default_frame_spacing_mm: float | None = None) -> LoadedPullback:
    """Load single-frame instances of one series as one pullback.

    Parameters
    ----------
    paths : sequence of path
        The instances (any order).
    default_pixel_spacing_mm, default_frame_spacing_mm : float or None
        Site defaults, as for :func:`srservice.dicomio.load_pullback`.

    Returns
    -------
    LoadedPullback
        Frames stacked in Instance Number order; header and SOP Instance UID of the first;
        ``frame_sop_instance_uids`` / ``frame_headers`` one per frame (when more than one
        instance).

    Raises
    ------
    InvalidDicomError
        No instance, an instance with more than one frame, the same SOP Instance UID twice,
        or frames of different sizes.
    """
    if not paths:
        raise InvalidDicomError("series has no instances to analyse")
    parts = sorted((load_pullback(p, default_pixel_spacing_mm=default_pixel_spacing_mm,
                                  default_frame_spacing_mm=default_frame_spacing_mm)
                    for p in paths), key=_order)
    if len(parts) == 1:
        return parts[0]
    multi = [p.sop_instance_uid for p in parts if p.pullback.frames.shape[0] != 1]
    if multi:
        raise InvalidDicomError(f"series instance {multi[0]} has more than one frame")
    uids = tuple(p.sop_instance_uid for p in parts)
    if len(set(uids)) != len(uids):
        raise InvalidDicomError("series lists the same SOP Instance UID more than once")
    shapes = {p.pullback.frames.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise InvalidDicomError(f"series frames differ in size: {sorted(shapes)}")
    first = parts[0]
    frames = np.concatenate([p.pullback.frames for p in parts], axis=0)
    frame_spacing = next((p.pullback.frame_spacing_mm for p in parts
                          if p.pullback.frame_spacing_mm is not None), default_frame_spacing_mm)
    notes = (f"pullback assembled from {len(parts)} single-frame instances of one series, "
             "ordered by Instance Number",
             *(n for n in first.pullback.notes if "frame spacing" not in n.lower()))
    if frame_spacing is None:
        notes = (*notes, "frame spacing unknown for the single-frame series")
    pullback = replace(first.pullback, frames=frames, frame_spacing_mm=frame_spacing,
                       notes=notes)
    return LoadedPullback(pullback=pullback, header=first.header,
                          sop_instance_uid=first.sop_instance_uid,
                          frame_sop_instance_uids=uids,
                          frame_headers=tuple(p.header for p in parts))
