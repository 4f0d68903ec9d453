"""Blood-speckle decorrelation cue (srservice.analysis.speckle)."""

from __future__ import annotations

import numpy as np

from srservice.analysis.speckle import blood_likeness, decorrelation


def _frames(rho: float, n: int = 5, shape: tuple[int, int] = (90, 60), seed: int = 1
            ) -> np.ndarray:
    """Speckle-like frames: inner radii re-drawn each frame, outer ones correlated ``rho``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, *shape), dtype=np.float32)
    tissue = rng.standard_normal(shape)
    half = shape[1] // 2
    for k in range(n):
        tissue = rho * tissue + np.sqrt(1.0 - rho**2) * rng.standard_normal(shape)
        img = tissue.copy()
        img[:, :half] = rng.standard_normal((shape[0], half))
        out[k] = (100.0 + 20.0 * img).astype(np.float32)
    return out


def test_blood_decorrelates_more_than_tissue() -> None:
    frames = _frames(0.9)
    d = decorrelation(frames, np.ones(frames.shape[0], dtype=np.bool_), slice(1, 4))
    assert d is not None and d.shape == (3, 90, 60)
    blood = float(np.median(d[:, :, 5:25]))
    tissue = float(np.median(d[:, :, 35:55]))
    assert blood > 0.8 and tissue < 0.4 * blood


def test_no_neighbour_gives_none() -> None:
    frames = _frames(0.9, n=1)
    assert decorrelation(frames, np.ones(1, dtype=np.bool_), slice(0, 1)) is None


def test_weight_only_without_grey_level_contrast() -> None:
    frames = _frames(0.9)
    d = decorrelation(frames, np.ones(frames.shape[0], dtype=np.bool_), slice(1, 4))
    sd = frames[1:4]
    q, w = blood_likeness(d, sd, 2, 0.025, blood=100.0, plaque=110.0)
    assert q is not None and w == 1.0
    assert float(np.median(q[:, :, 5:25])) < 0.0 < float(np.median(q[:, :, 35:55]))
    assert blood_likeness(d, sd, 2, 0.025, blood=50.0, plaque=100.0) == (None, 0.0)
    # Wall as decorrelated as blood (e.g. gated frames): no weight.
    flat = _frames(0.0)
    d0 = decorrelation(flat, np.ones(flat.shape[0], dtype=np.bool_), slice(1, 4))
    assert blood_likeness(d0, flat[1:4], 2, 0.025, blood=100.0, plaque=110.0) == (None, 0.0)
