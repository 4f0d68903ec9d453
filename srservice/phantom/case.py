"""make_case: render a :class:`CaseSpec` into frames plus ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from srservice.analysis.types import LesionFeatures, Pullback
from srservice.phantom.geometry import build_anatomy, lesion_arc
from srservice.phantom.overlays import apply_overlays, overlay_mask
from srservice.phantom.render import (
    N_THETA,
    SpeckleState,
    plaque_texture,
    render_polar,
    scan_convert,
    scan_geometry,
)
from srservice.phantom.spec import CaseSpec
from srservice.phantom.truth import (
    CaseTruth,
    ExpectedScore,
    FrameTruth,
    expected_score,
    frame_truth,
    lesion_features,
)


@dataclass(frozen=True)
class PhantomCase:
    """A rendered synthetic pullback and its ground truth.

    Attributes
    ----------
    frames : numpy.ndarray
        uint8 ``(n, rows, rows)`` grey or ``(n, rows, rows, 3)`` RGB (coloured overlays).
    catheter_center : tuple of float
        ``(x, y)`` pixel position of the transducer (DICOM Reference Pixel X0/Y0).
    """

    spec: CaseSpec
    frames: npt.NDArray[np.uint8]
    pixel_spacing_mm: float
    frame_spacing_mm: float
    catheter_center: tuple[float, float]
    truth: CaseTruth

    @property
    def is_rgb(self) -> bool:
        """True for an RGB export."""
        return self.frames.ndim == 4

    def grey_frames(self) -> npt.NDArray[np.uint8]:
        """Frames as grey (ITU-R BT.601 luma for RGB)."""
        if not self.is_rgb:
            return self.frames
        f = self.frames.astype(np.float32)
        y = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
        grey: npt.NDArray[np.uint8] = np.clip(y + 0.5, 0, 255).astype(np.uint8)
        return grey

    def pullback(self) -> Pullback:
        """Return the grey :class:`Pullback` (as the loader would produce, without DICOM)."""
        return Pullback(
            frames=self.grey_frames(),
            pixel_spacing_mm=self.pixel_spacing_mm,
            frame_spacing_mm=self.frame_spacing_mm,
            catheter_center=self.catheter_center,
        )


def make_case(spec: CaseSpec) -> PhantomCase:
    """Render ``spec`` (deterministic given ``spec.seed``) and compute its ground truth."""
    if spec.rows < 64 or spec.frame_count < 1:
        raise ValueError("rows must be >= 64 and frame_count >= 1")
    if spec.overlays not in {"none", "grey", "colour"}:
        raise ValueError(f"overlays must be none, grey or colour, not {spec.overlays!r}")
    center = (
        (spec.rows - 1) / 2.0 + spec.catheter_offset_px[0],
        (spec.rows - 1) / 2.0 + spec.catheter_offset_px[1],
    )
    geo = scan_geometry(spec.rows, spec.pixel_spacing_mm, center)
    anatomy = build_anatomy(spec)
    rng = np.random.default_rng(spec.seed + 1)
    speckle = SpeckleState((N_THETA, geo.n_r), spec.frame_spacing_mm, rng, plaque_texture(rng))
    seam = int(np.random.default_rng(spec.seed + 2).integers(0, N_THETA - 2))
    colour = spec.overlays == "colour"
    shape = (spec.frame_count, spec.rows, spec.rows) + ((3,) if colour else ())
    frames = np.empty(shape, dtype=np.uint8)
    mask = None
    for fa in anatomy:
        img = scan_convert(geo, render_polar(spec, geo, fa, speckle, seam))
        if spec.overlays != "none":
            labels = (f"Frame {fa.index + 1}", f"{spec.frequency_mhz:.0f}MHz", "IVUS PHANTOM")
            mask = overlay_mask(spec.rows, center, geo.fov_px, spec.pixel_spacing_mm, labels)
            frames[fa.index] = apply_overlays(img, mask, colour)
        else:
            frames[fa.index] = img
    ftruth = [frame_truth(fa, center, spec.pixel_spacing_mm) for fa in anatomy]
    lesions: list[LesionFeatures] = []
    scores: list[ExpectedScore] = []
    for les in spec.lesions:
        ks = [k for k in range(spec.frame_count) if lesion_arc(spec, les, k) > 0]
        if not ks:
            continue
        lf = lesion_features(ftruth, ks[0] + 1, ks[-1] + 1, spec.frame_spacing_mm)
        if lf is not None:
            lesions.append(lf)
            scores.append(expected_score(lf))
    truth = CaseTruth(frames=tuple(ftruth), lesions=tuple(lesions), scores=tuple(scores))
    return PhantomCase(
        spec=spec,
        frames=frames,
        pixel_spacing_mm=spec.pixel_spacing_mm,
        frame_spacing_mm=spec.frame_spacing_mm,
        catheter_center=center,
        truth=truth,
    )


__all__ = ["FrameTruth", "PhantomCase", "make_case"]
