"""Per-pullback context of the polar analysis and the small image filters it uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from srservice.analysis.params import AnalysisParameters

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Levels:
    """Pullback-level grey levels (after gain normalisation)."""

    blood: float
    plaque: float
    bright: float
    dark: float


@dataclass(frozen=True)
class Context:
    """Per-pullback constants of the polar analysis."""

    r0: int
    step_mm: float
    valid_end: npt.NDArray[np.intp]
    levels: Levels
    params: AnalysisParameters

    def samples(self, mm: float) -> int:
        """Return the number of radial samples in ``mm`` (at least 1)."""
        return max(1, round(mm / self.step_mm))


def box_angle(x: F32, size: int) -> F32:
    """Return the circular moving average of odd ``size`` over axis 1 (angle).

    Equivalent to ``scipy.ndimage.uniform_filter1d(x, size, axis=1, mode="wrap")`` but several
    times faster for the small windows used here (no per-line overhead).
    """
    h = size // 2
    if h == 0:
        return np.array(x, dtype=np.float32)
    pad = np.concatenate([x[:, -h:], x, x[:, :h]], axis=1).astype(np.float32, copy=False)
    n_a = x.shape[1]
    out = pad[:, :n_a].copy()
    for d in range(1, size):
        out += pad[:, d : d + n_a]
    out *= np.float32(1.0 / size)
    return out


def box_radius(x: F32, size: int) -> F32:
    """Return the moving average of odd ``size`` over axis 2 (radius), edges repeated."""
    h = size // 2
    if h == 0:
        return np.array(x, dtype=np.float32)
    pad = np.concatenate([np.repeat(x[:, :, :1], h, axis=2), x,
                          np.repeat(x[:, :, -1:], h, axis=2)], axis=2)
    pad = pad.astype(np.float32, copy=False)
    n_r = x.shape[2]
    out = pad[:, :, :n_r].copy()
    for d in range(1, size):
        out += pad[:, :, d : d + n_r]
    out *= np.float32(1.0 / size)
    return out


def smooth(polar: F32, size_a: int, size_r: int) -> F32:
    """Box smoothing over angle (circular) and radius within each frame."""
    return box_radius(box_angle(polar, size_a), size_r)
