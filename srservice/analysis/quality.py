"""Quality gates: which frames can be measured, and why not.

Every frame gets a verdict with a reason a reader understands (docs/scoring.md, "Assessable
frames"). A frame is not assessable when

- it holds no usable echo: blank, saturated, or no speckle structure (random noise);
- the transducer is inside the guide catheter;
- it was recorded at another display depth than the rest of the pullback (the catheter ring
  and the field of view change size, so the pixel spacing of the file no longer applies);
- its contours fail the shape checks: star shapes (solidity), lumen outside the EEM, or an EEM
  mean diameter outside the range of a coronary artery (1.5-7 mm; Mintz et al., JACC
  2001;37:1478, expert consensus on IVUS measurements);
- a side branch takes off (the lumen opens beyond its smooth contour over a wide arc).

Non-assessable frames are never measured into a score (:mod:`.features`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from srservice.analysis.params import AnalysisParameters

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Reasons, one wording each (reports group frames by these strings).
NO_ECHO = "no echo (blank frame)"
SATURATED = "saturated frame"
NO_SIGNAL = "no usable ultrasound signal (no speckle structure: noise)"
GUIDE_CATHETER = "transducer inside the guide catheter"
DEPTH_CHANGE = "display depth differs from the rest of the pullback (pixel spacing does not apply)"
SIDE_BRANCH = "side-branch take-off"
STAR_SHAPE = "lumen or EEM contour implausible (star shape)"
LUMEN_OUTSIDE_EEM = "lumen contour outside the EEM contour"


def eem_size_reason(diameter_mm: float, params: AnalysisParameters) -> str:
    """Reason why a mean EEM diameter is implausible for a coronary artery ('' when plausible)."""
    lo, hi = params.min_eem_diameter_mm, params.max_eem_diameter_mm
    if lo <= diameter_mm <= hi:
        return ""
    return (f"EEM mean diameter {diameter_mm:.1f} mm outside the coronary range "
            f"{lo:g}-{hi:g} mm")


def speckle_structure(frames: npt.NDArray[np.uint8], lag: int = 2) -> F64:
    """Correlation of each frame with itself shifted by ``lag`` pixels (rows and columns).

    Ultrasound speckle is correlated over the point-spread function (real exports: 0.1-0.25 mm,
    several pixels), burnt-in overlays and anatomy even more; independent random noise is not
    (correlation near 0). Computed on the central part of the frame on a coarse pixel grid.
    """
    n, rows, cols = frames.shape
    r0, r1 = rows // 8, rows - rows // 8
    c0, c1 = cols // 8, cols - cols // 8
    a = frames[:, r0:r1, c0:c1]
    out = np.zeros(n)
    if a.shape[1] <= lag + 1 or a.shape[2] <= lag + 1:
        return out
    # Every 4th line in each direction is plenty for a correlation and 4 times cheaper.
    pairs = ((a[:, ::4, :-lag], a[:, ::4, lag:]), (a[:, :-lag, ::4], a[:, lag:, ::4]))
    for xs, ys in pairs:
        x = xs.reshape(n, -1).astype(np.float32)
        y = ys.reshape(n, -1).astype(np.float32)
        x -= x.mean(axis=1, keepdims=True)
        y -= y.mean(axis=1, keepdims=True)
        num = np.einsum("ij,ij->i", x, y)
        den = np.sqrt(np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", y, y))
        out += 0.5 * np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    return out


def depth_changed(catheter_radius: F64, echo_extent: F64, tolerance: float) -> B:
    """Frames whose catheter ring and field of view differ in size from the pullback's majority.

    A change of display depth rescales the whole image: the catheter ring-down and the extent
    of the echo both change by the same factor. Either one alone also varies for other reasons
    (a guide catheter, a dark far field), so a frame is marked when both differ from the
    pullback median by more than ``tolerance``, or when the only one measured differs by more
    than twice that.

    Parameters
    ----------
    catheter_radius, echo_extent : numpy.ndarray
        Per frame: radius of the catheter ring-down and of the last echo (any unit; NaN
        where not measured).
    tolerance : float
        Relative difference from the pullback median that marks a change.
    """
    off: list[B] = []
    known: list[B] = []
    for x in (catheter_radius, echo_extent):
        ok = np.isfinite(x) & (x > 0)
        dev = np.zeros(x.shape)
        if ok.sum() >= 3:
            med = float(np.median(x[ok]))
            dev[ok] = np.abs(x[ok] - med) / med
        else:
            ok = np.zeros(x.shape, dtype=np.bool_)
        off.append(np.asarray(dev, dtype=np.float64))
        known.append(ok)
    both = known[0] & known[1] & (off[0] > tolerance) & (off[1] > tolerance)
    one = ((known[0] & ~known[1] & (off[0] > 2 * tolerance))
           | (known[1] & ~known[0] & (off[1] > 2 * tolerance)))
    out = both | one
    # A display depth holds for many frames; single-frame outliers are measurement noise.
    return np.asarray(ndimage.median_filter(out.astype(np.uint8), size=5, mode="nearest") > 0)


def solidity(contour: F64) -> float:
    """Area of a closed polygon over the area of its convex hull (1 for convex shapes)."""
    if contour.shape[0] < 3:
        return 0.0
    x, y = contour[:, 0], contour[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    try:
        hull = ConvexHull(contour).volume  # the "volume" of a 2-D hull is its area
    except QhullError:
        return 0.0
    return area / hull if hull > 0 else 0.0


def shape_reason(lumen_radii: F64, eem_radii: F64, lumen_contour: F64, eem_contour: F64,
                 params: AnalysisParameters, outside_tolerance: float = 0.0) -> str:
    """Reason why the contours of a frame fail the shape checks ('' when they pass).

    ``lumen_radii`` and ``eem_radii`` are the borders along the same rays (any unit); the
    lumen may exceed the EEM by ``outside_tolerance`` (same unit) before the frame fails.
    """
    if bool(np.any(lumen_radii > eem_radii + outside_tolerance)):
        return LUMEN_OUTSIDE_EEM
    if min(solidity(lumen_contour), solidity(eem_contour)) < params.min_solidity:
        return STAR_SHAPE
    return ""


def longest_circular_run(mask: B) -> int:
    """Length of the longest circular run of True in a 1-D mask."""
    if not mask.any():
        return 0
    if mask.all():
        return int(mask.size)
    k = int(np.argmin(mask))  # start just after a False so the run cannot wrap
    m = np.roll(mask, -k).astype(np.int8)
    d = np.diff(np.concatenate([[0], m, [0]]))
    return int((np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).max())
