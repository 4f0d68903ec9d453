"""Preprocessing of polar frames: rotation seam, gain normalisation, catheter ring-down.

Mechanical IVUS catheters show a dark radial line where each rotation starts (the "seam", one
A-line). Consoles also change gain between frames (time-gain compensation, operator gain).
Both would mimic shadows, so they are removed before any border or calcium detection.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from srservice.analysis.params import AnalysisParameters

F32 = npt.NDArray[np.float32]


def remove_seam(polar: F32, r0: int, params: AnalysisParameters) -> F32:
    """Interpolate single-A-line dark columns (rotation seam) in place and return ``polar``.

    A column (angle bin) whose mean beyond the catheter is below ``params.seam_contrast`` of
    both its neighbours two bins away, and darker than its direct neighbours, is replaced by
    the mean of the bins two away. A guidewire or calcium shadow is wider and is untouched.

    Parameters
    ----------
    polar : numpy.ndarray
        ``(n, ANGLE_BINS, R)`` float32 polar frames.
    r0 : int
        First radial sample beyond the catheter.
    params : AnalysisParameters
        Thresholds.
    """
    col = polar[:, :, r0:].mean(axis=2)
    left2 = np.roll(col, 2, axis=1)
    right2 = np.roll(col, -2, axis=1)
    ref = np.minimum(left2, right2)
    seam = col < params.seam_contrast * ref
    # Widen by one bin on each side where the neighbour is also darker than the reference.
    seam |= (np.roll(seam, 1, axis=1) | np.roll(seam, -1, axis=1)) & (
        col < 0.85 * ref
    )
    f_idx, a_idx = np.nonzero(seam)
    if f_idx.size:
        n_a = polar.shape[1]
        lo = (a_idx - 2) % n_a
        hi = (a_idx + 2) % n_a
        polar[f_idx, a_idx, :] = 0.5 * (polar[f_idx, lo, :] + polar[f_idx, hi, :])
    return polar


def gain_factors(levels: npt.NDArray[np.float64], params: AnalysisParameters
                 ) -> npt.NDArray[np.float64]:
    """Per-frame gain correction: running median of frame levels over this frame's level.

    Anatomy changes slowly along the pullback, gain jumps from frame to frame; dividing by
    the ratio to the running median removes the jumps but keeps the anatomy.
    """
    lv = np.maximum(levels, 1.0)
    w = max(3, params.gain_window | 1)
    ref = ndimage.median_filter(lv, size=w, mode="nearest")
    return np.asarray(np.clip(ref / lv, 0.5, 2.0), dtype=np.float64)


def catheter_radius_samples(polar_samples: F32, step_mm: float,
                            params: AnalysisParameters) -> int:
    """Radial index just beyond the catheter ring-down, from frames spread over the pullback.

    The ring-down is bright in every frame, so it survives a temporal minimum over frames
    sampled along the pullback, while blood speckle does not. The outer edge is the first
    radius beyond the brightest ring (within 1 mm) where the median temporal minimum falls
    to a quarter of the way from the level just beyond (blood) to the ring's peak;
    ``params.catheter_radius_mm`` is the fallback.
    """
    default = round(params.catheter_radius_mm / step_mm) + 2
    n_r = int(polar_samples.shape[2])
    if polar_samples.shape[0] < 4:
        return min(default, n_r - 1)
    prof = np.median(polar_samples.min(axis=0), axis=0)
    lo = max(1, int(0.1 / step_mm))
    hi = min(int(1.0 / step_mm), n_r - 1)
    if hi <= lo + 2:
        return min(default, n_r - 1)
    peak = lo + int(np.argmax(prof[lo:hi]))
    if prof[peak] < 40.0:
        return min(default, n_r - 1)
    b0 = min(peak + int(0.25 / step_mm), n_r - 1)
    b1 = min(peak + int(1.0 / step_mm), n_r)
    base = float(np.median(prof[b0:b1])) if b1 > b0 else 0.0
    after = np.flatnonzero(prof[peak:hi] < base + 0.25 * (prof[peak] - base))
    if after.size == 0:
        return min(default, n_r - 1)
    return int(min(peak + after[0] + 1, int(1.2 / step_mm)))
