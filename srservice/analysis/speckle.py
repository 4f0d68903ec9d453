"""Blood-speckle decorrelation: tells flowing blood from tissue when both are equally bright.

At 50-60 MHz the blood echo is nearly as strong as plaque, so the grey level alone no longer
separates the lumen from the wall. Blood scatterers move with the flow between frames, so
blood speckle decorrelates from one frame to the next, while tissue (moving little between
frames, and sampled by an elevation beam wider than the frame spacing) keeps much of its
speckle pattern. This is the cue behind the ChromaFlo / blood-speckle-flow displays and the
temporal-decorrelation lumen detectors (e.g. Li W. et al., "Temporal correlation of blood
scattering signals in vivo from radiofrequency intravascular ultrasound", Ultrasound Med
Biol 1996;22:583; Rosales M. et al., "Automatic lumen segmentation in IVUS using blood
speckle decorrelation", Comput Cardiol 2004).

The measure is the ratio of the temporal difference energy (a frame against its
neighbours) to the spatial difference energy of the same frame at an angular shift larger
than the speckle size: about ``1 - rho`` with ``rho`` the frame-to-frame correlation, so
about 1 in blood and clearly lower in tissue, independent of the grey level and the gain.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from srservice.analysis.context import smooth

F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]

#: Angular shift (angle nodes) of the spatial reference difference.
SHIFT = 4


def decorrelation(nodes: F32, ok: B, own: slice) -> F32 | None:
    """Temporal decorrelation of the frames ``own`` of a batch (angle nodes, radius).

    Parameters
    ----------
    nodes : numpy.ndarray
        ``(n, A, R)`` float32 polar frames on angle nodes, consecutive along the pullback.
    ok : numpy.ndarray
        ``(n,)`` frames that may be used (not blank or saturated).
    own : slice
        The frames to measure; their neighbours in ``nodes`` serve as references.

    Returns
    -------
    numpy.ndarray or None
        ``(len(own), A, R)`` ratio of temporal to spatial difference energy (about 1 for
        decorrelated blood speckle, lower for tissue), or None when no frame has a usable
        neighbour.
    """
    n = nodes.shape[0]
    idx = np.arange(n)[own]
    temporal = np.zeros((idx.size, *nodes.shape[1:]), dtype=np.float32)
    count = np.zeros(idx.size, dtype=np.float32)
    for d in (-1, 1):
        nb = idx + d
        use = (nb >= 0) & (nb < n)
        use[use] &= ok[nb[use]] & ok[idx[use]]
        if not use.any():
            continue
        diff = nodes[idx[use]] - nodes[nb[use]]
        temporal[use] += diff * diff
        count[use] += 1.0
    if not count.any():
        return None
    temporal /= np.maximum(count, 1.0)[:, None, None]
    own_nodes = nodes[own]
    spatial = own_nodes - np.roll(own_nodes, SHIFT, axis=1)
    spatial *= spatial
    t = smooth(temporal, 5, 5)
    s = smooth(spatial, 5, 5)
    s += np.float32(4.0)  # dark shadows / empty field: no speckle, no evidence
    out = np.asarray(t / s, dtype=np.float32)
    out[count == 0] = np.nan
    return out


def contrast_weight(blood: float, plaque: float) -> float:
    """Weight (0-1) of the decorrelation cue from the blood-plaque grey-level contrast.

    1 below 10 grey levels of contrast, 0 above 25 (the grey level alone then separates
    blood from tissue).
    """
    return float(np.clip((25.0 - (plaque - blood)) / 15.0, 0.0, 1.0))


def blood_likeness(dec: F32 | None, sd: F32, r0: int, step_mm: float, blood: float,
                   plaque: float) -> tuple[F32 | None, float]:
    """Return the decorrelation evidence ``q`` (negative = blood) and its weight (0-1).

    ``q = clip((0.7 D_b - D) / (0.25 D_b), -1, 1)`` with ``D_b`` the median decorrelation
    just outside the catheter (blood). The weight grows as the grey-level contrast between
    blood and plaque vanishes (full weight below 10 grey levels, none above 25) and is zero
    when the batch shows no decorrelation contrast: blood not decorrelated (``D_b < 0.7``)
    or the wall as decorrelated as the blood (gated or sparse frames).
    """
    w = contrast_weight(blood, plaque)
    if dec is None or w == 0.0:
        return None, 0.0
    d = np.where(np.isnan(dec), np.float32(0.0), dec)
    g0 = r0 + max(1, round(0.05 / step_mm))
    g1 = g0 + max(2, round(0.15 / step_mm))
    ok = ~np.isnan(dec[:, 0, 0])
    if not ok.any():
        return None, 0.0
    d_b = float(np.median(d[ok, :, g0:g1]))
    wall = d[ok, :, g0 : r0 + round(2.5 / step_mm)]
    lit = sd[ok, :, g0 : r0 + round(2.5 / step_mm)] > 0.5 * blood
    if d_b < 0.7 or not lit.any() or float(np.percentile(wall[lit], 20)) > 0.6 * d_b:
        return None, 0.0
    q = (np.float32(0.7 * d_b) - d) * np.float32(1.0 / (0.25 * d_b))
    np.clip(q, -1.0, 1.0, out=q)
    q[~ok] = 0.0
    return np.asarray(q, dtype=np.float32), w
