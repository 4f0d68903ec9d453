"""Lumen and EEM borders as minimum-cost circular paths in polar images.

Both borders are found by dynamic programming over the angle bins (Sonka et al., IEEE TMI
1995;14:719, "Segmentation of intravascular ultrasound images: a knowledge-based approach";
graph search with a smoothness constraint), on all frames of a batch at once. The path is
closed by running the recursion over the angles padded circularly on both sides and keeping
the middle turn.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.intp]
B = npt.NDArray[np.bool_]


def dp_circular(cost: F32, max_jump: int, pad: int | None = None) -> I64:
    """Minimum-cost closed path through ``cost`` ``(n, A, R)``: one radius per angle.

    Neighbouring angles differ by at most ``max_jump`` radial samples. Returns ``(n, A)``
    radial indices.
    """
    n, n_a, n_r = cost.shape
    pad = n_a // 8 if pad is None else pad
    order = np.concatenate([np.arange(n_a - pad, n_a), np.arange(n_a), np.arange(pad)])
    m = order.size
    acc = np.empty((n, m, n_r), dtype=np.float32)
    acc[:, 0] = cost[:, order[0]]
    size = 2 * max_jump + 1
    for i in range(1, m):
        prev = ndimage.minimum_filter1d(acc[:, i - 1], size, axis=1, mode="nearest")
        np.add(cost[:, order[i]], prev, out=acc[:, i])
    path = np.empty((n, m), dtype=np.intp)
    path[:, -1] = np.argmin(acc[:, -1], axis=1)
    offs = np.arange(-max_jump, max_jump + 1)
    rows = np.arange(n)
    for i in range(m - 2, -1, -1):
        cand = np.clip(path[:, i + 1][:, None] + offs[None, :], 0, n_r - 1)
        vals = np.take_along_axis(acc[:, i], cand, axis=1)
        path[:, i] = cand[rows, np.argmin(vals, axis=1)]
    return path[:, pad : pad + n_a]


def decimate_angles(x: F32, step: int) -> F32:
    """Average groups of ``step`` neighbouring angle bins: ``(n, A, R) -> (n, A/step, R)``."""
    if step == 1:
        return x
    n, n_a, n_r = x.shape
    return np.asarray(x.reshape(n, n_a // step, step, n_r).mean(axis=2), dtype=np.float32)


def upsample_path(path: npt.NDArray[np.float64], step: int, n_a: int
                  ) -> npt.NDArray[np.float64]:
    """Periodic linear interpolation of node radii (node ``k`` at bin ``k*step + (step-1)/2``)."""
    if step == 1:
        return path
    nodes = np.arange(path.shape[1]) * step + (step - 1) / 2.0
    bins = np.arange(n_a, dtype=np.float64)
    return np.stack([np.interp(bins, nodes, p, period=n_a) for p in path])


def region_cost(q: F32, window: int) -> F32:
    """Cost of a blood-to-tissue border at each radius (lower is better).

    ``q`` is positive where the image looks like tissue and negative where it looks like
    blood. The cost of a border at ``r`` is the tissue seen inside (``sum(max(q, 0)[:r])``,
    so the border stops at the first tissue) plus a local step term
    ``sum(q[r-window:r]) - sum(q[r:r+window])`` (blood just inside, tissue just outside).
    """
    n, n_a, n_r = q.shape
    pos = np.zeros((n, n_a, n_r + 1), dtype=np.float32)
    np.cumsum(np.maximum(q, 0.0), axis=2, out=pos[:, :, 1:])
    cs = np.zeros((n, n_a, n_r + 2 * window + 1), dtype=np.float32)
    np.cumsum(q, axis=2, out=cs[:, :, window + 1 : window + n_r + 1])
    cs[:, :, window + n_r + 1 :] = cs[:, :, window + n_r : window + n_r + 1]
    # cs[window + k] = sum(q[:k]) for k in [-window, n_r + window].
    at = cs[:, :, window : window + n_r]
    before = at - cs[:, :, :n_r]
    after = cs[:, :, 2 * window : 2 * window + n_r] - at
    return np.asarray(pos[:, :, :n_r] + before - after, dtype=np.float32)


def interpolate_hidden(radii: npt.NDArray[np.float64], hidden: B) -> npt.NDArray[np.float64]:
    """Replace hidden angle bins of each row by periodic linear interpolation of visible ones.

    Rows with no visible bin are returned unchanged.
    """
    out = radii.copy()
    n_a = radii.shape[1]
    bins = np.arange(n_a, dtype=np.float64)
    for i in range(radii.shape[0]):
        h = hidden[i]
        if not h.any() or h.all():
            continue
        vis = ~h
        out[i, h] = np.interp(bins[h], bins[vis], radii[i, vis], period=n_a)
    return out


def robust_fourier_fit(radii: npt.NDArray[np.float64], weights: B, order: int = 3,
                       iterations: int = 3, clip: float = 3.0,
                       ridge: float = 0.02) -> npt.NDArray[np.float64]:
    """Ridge-regularised low-order Fourier fit of each row's radius function (batched).

    ``weights`` selects the bins used; after each fit, bins whose residual exceeds ``clip``
    times the median absolute residual are dropped (iteratively reweighted fit). Harmonic
    ``k`` is penalised by ``ridge * k**4`` per angle bin so that fits over a short visible
    arc stay close to a circle instead of oscillating. Rows with no usable bin get their
    median.
    """
    n_a = radii.shape[1]
    t = np.deg2rad((np.arange(n_a) + 0.5) * 360.0 / n_a)
    cols = [np.ones(n_a)]
    pen = [0.0]
    for k in range(1, order + 1):
        cols += [np.cos(k * t), np.sin(k * t)]
        pen += [ridge * k**4, ridge * k**4]
    basis = np.stack(cols, axis=1)
    penalty = np.diag(pen) * n_a + np.eye(len(pen)) * 1e-9
    outer = basis[:, :, None] * basis[:, None, :]
    w = weights.astype(np.float64)
    med = np.median(radii, axis=1)
    fit = np.repeat(med[:, None], n_a, axis=1)
    for _ in range(iterations):
        ok = w.sum(axis=1) >= 3
        if not ok.any():
            break
        ata = np.einsum("fa,amk->fmk", w, outer) + penalty
        aty = np.einsum("fa,am->fm", w * radii, basis)
        coef = np.linalg.solve(ata, aty[:, :, None])[:, :, 0]
        new = coef @ basis.T
        fit = np.where(ok[:, None], new, fit)
        res = np.abs(radii - fit)
        masked = np.where(w > 0, res, np.inf)
        count = (w > 0).sum(axis=1)
        srt = np.sort(masked, axis=1)
        mid = np.clip((count - 1) // 2, 0, n_a - 1)
        mad = np.where(count > 0, srt[np.arange(radii.shape[0]), mid], np.inf) + 1e-6
        w = w * (res <= clip * mad[:, None] + 1e-9)
    return np.asarray(fit, dtype=np.float64)
