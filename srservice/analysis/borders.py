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

from srservice.analysis.geometry import circular_neighbours

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.intp]
B = npt.NDArray[np.bool_]


def sliding_min(x: F32, size: int) -> F32:
    """Minimum over windows of odd ``size`` along axis 0 of ``(L, ...)``: ``(L - size + 1, ...)``.

    Van Herk style doubling: ``ceil(log2(size))`` vectorised minima over whole contiguous
    blocks instead of one filter call per line (the caller pads the ends, e.g. with ``+inf``).
    """
    m = x
    w = 1
    while 2 * w <= size:
        m = np.minimum(m[:-w], m[w:])
        w *= 2
    n_out = x.shape[0] - size + 1
    return np.minimum(m[:n_out], m[size - w : size - w + n_out])


def dp_circular(cost: F32, max_jump: int, pad: int | None = None) -> I64:
    """Minimum-cost closed path through ``cost`` ``(n, A, R)``: one radius per angle.

    Neighbouring angles differ by at most ``max_jump`` radial samples. Returns ``(n, A)``
    radial indices. The recursion runs on an angle-major, frame-minor copy (``(A, R, n)``) so
    every step is a few operations on contiguous blocks, and the accumulated cost is padded
    with ``+inf`` by ``max_jump`` samples at both radial ends, so neither the forward minimum
    nor the backtracking needs clipping.
    """
    n, n_a, n_r = cost.shape
    pad = n_a // 8 if pad is None else pad
    order = np.concatenate([np.arange(n_a - pad, n_a), np.arange(n_a), np.arange(pad)])
    m = order.size
    j = max_jump
    size = 2 * j + 1
    c_t = np.ascontiguousarray(np.transpose(cost, (1, 2, 0)), dtype=np.float32)
    acc = np.full((m, n_r + 2 * j, n), np.inf, dtype=np.float32)
    acc[0, j : j + n_r] = c_t[order[0]]
    for i in range(1, m):
        np.add(c_t[order[i]], sliding_min(acc[i - 1], size), out=acc[i, j : j + n_r])
    path = np.empty((n, m), dtype=np.intp)
    path[:, -1] = np.argmin(acc[-1, j : j + n_r], axis=0)
    offs = np.arange(size)[None, :]  # padded index of path - j .. path + j
    cols = np.arange(n)[:, None]
    for i in range(m - 2, -1, -1):
        vals = acc[i, path[:, i + 1][:, None] + offs, cols]
        path[:, i] = path[:, i + 1] + np.argmin(vals, axis=1) - j
    return path[:, pad : pad + n_a]


def decimate_angles(x: F32, step: int) -> F32:
    """Average groups of ``step`` neighbouring angle bins: ``(n, A, R) -> (n, A/step, R)``."""
    if step == 1:
        return x
    out = np.add(x[:, 0::step], x[:, 1::step], dtype=np.float32)
    for k in range(2, step):
        out += x[:, k::step]
    out *= np.float32(1.0 / step)
    return out


def upsample_path(path: npt.NDArray[np.float64], step: int, n_a: int
                  ) -> npt.NDArray[np.float64]:
    """Periodic linear interpolation of node radii (node ``k`` at bin ``k*step + (step-1)/2``)."""
    if step == 1:
        return path
    n_nodes = path.shape[1]
    u = (np.arange(n_a, dtype=np.float64) - (step - 1) / 2.0) / step
    k0 = np.floor(u)
    frac = u - k0
    i0 = k0.astype(np.intp) % n_nodes
    i1 = (i0 + 1) % n_nodes
    return np.asarray(path[:, i0] * (1.0 - frac) + path[:, i1] * frac, dtype=np.float64)


def region_cost(q: F32, window: int) -> F32:
    """Cost of a blood-to-tissue border at each radius (lower is better).

    ``q`` is positive where the image looks like tissue and negative where it looks like
    blood. The cost of a border at ``r`` is the tissue seen inside (``sum(max(q, 0)[:r])``,
    so the border stops at the first tissue) plus a local step term
    ``sum(q[r-window:r]) - sum(q[r:r+window])`` (blood just inside, tissue just outside).

    The prefix sums run radius by radius over all rays at once (radius-major copy
    ``(R, A, n)``), several times faster than ``numpy.cumsum`` along the short last axis and
    with the same sums. The result is an ``(n, A, R)`` view of an angle-major ``(A, R, n)``
    array, the layout :func:`dp_circular` works in (no copy there).
    """
    n, n_a, n_r = q.shape
    qt = np.ascontiguousarray(np.transpose(q, (2, 1, 0))).reshape(n_r, n_a * n)
    qp = np.maximum(qt, np.float32(0.0))
    # cs[window + k] = sum(q[:k]) for k in [-window, n_r + window] (clamped at both ends).
    cs = np.empty((n_r + 2 * window + 1, n_a * n), dtype=np.float32)
    cs[: window + 1] = 0.0
    pos = np.empty((n_r, n_a * n), dtype=np.float32)  # pos[k] = sum(max(q, 0)[:k])
    pos[0] = 0.0
    for k in range(n_r):
        np.add(cs[window + k], qt[k], out=cs[window + k + 1])
        if k + 1 < n_r:
            np.add(pos[k], qp[k], out=pos[k + 1])
    cs[window + n_r + 1 :] = cs[window + n_r]
    at = cs[window : window + n_r]
    out = pos + (at - cs[:n_r])
    out -= cs[2 * window : 2 * window + n_r] - at
    arn = np.ascontiguousarray(out.reshape(n_r, n_a, n).transpose(1, 0, 2))
    return np.asarray(arn.transpose(2, 0, 1), dtype=np.float32)


def interpolate_hidden(radii: npt.NDArray[np.float64], hidden: B) -> npt.NDArray[np.float64]:
    """Replace hidden angle bins of each row by periodic linear interpolation of visible ones.

    Rows with no visible bin are returned unchanged (all rows at once, no per-row loop).
    """
    out = np.array(radii, dtype=np.float64)
    fill = hidden & ~hidden.all(axis=1, keepdims=True)
    if not fill.any():
        return out
    n_a = radii.shape[1]
    prev, nxt = circular_neighbours(~hidden)
    rows, cols = np.nonzero(fill)
    p, q = prev[rows, cols], nxt[rows, cols]
    r_p, r_q = radii[rows, p % n_a], radii[rows, q % n_a]
    t = (cols + n_a - p) / (q - p)
    out[rows, cols] = r_p + (r_q - r_p) * t
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
    n_c = basis.shape[1]
    outer = (basis[:, :, None] * basis[:, None, :]).reshape(n_a, n_c * n_c)
    w = weights.astype(np.float64)
    med = np.median(radii, axis=1)
    fit = np.repeat(med[:, None], n_a, axis=1)
    for _ in range(iterations):
        ok = w.sum(axis=1) >= 3
        if not ok.any():
            break
        ata = (w @ outer).reshape(-1, n_c, n_c) + penalty
        aty = (w * radii) @ basis
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
