"""From polar detections to per-frame measurements about the lumen centroid.

Conventions (docs/scoring.md): arcs are measured about the lumen centroid; the lumen area
includes the catheter; the mean EEM diameter is the mean of the maximum and minimum diameters
through the EEM centroid; superficial calcium has its leading edge in the inner half of the
plaque + media thickness along its ray; guidewire-shadow gaps count as calcium when calcium
lies on both sides of them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from srservice.analysis import detect, geometry, quality, volume
from srservice.analysis.borders import interpolate_hidden, robust_fourier_fit
from srservice.analysis.context import Context
from srservice.analysis.polar import PolarGrid
from srservice.analysis.types import ANGLE_BINS, FrameMeasurement
from srservice.analysis.wire import circular_dilate

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def blank_or_saturated(pol: F32, r0: int) -> tuple[B, B]:
    """Frames without echo (blank) and mostly saturated frames, from their polar images."""
    beyond = pol[:, ::3, r0::2]
    blank = (beyond.mean(axis=(1, 2)) < 3.0) | (beyond.std(axis=(1, 2)) < 1.0)
    saturated = (beyond >= 250).mean(axis=(1, 2)) > 0.5
    return np.asarray(blank), np.asarray(saturated & ~blank)


def fill_hidden_eem_along_pullback(eem: F64, lum_smooth: F64, hidden: B, assess: B,
                                   max_hidden: float = 0.5) -> F64:
    """Mostly hidden EEM (> ``max_hidden``): wall thickness from neighbouring frames.

    Within a frame, short hidden arcs are interpolated from the visible EEM on either side
    (:mod:`.detect`); when most of the EEM is behind calcium, the wall thickness (EEM minus
    smooth lumen) of each hidden angle bin is interpolated along the pullback from the
    nearest frames where that bin is visible (standard IVUS practice: interpolate from
    visible EEM).
    """
    frac = hidden.mean(axis=1)
    bad = assess & (frac > max_hidden)
    if not bad.any():
        return eem
    # Isolated visible frames inside a hidden run (echo drop-out) are not trusted sources.
    neighbours = ndimage.median_filter(frac, size=5, mode="nearest")
    good = assess & ~bad & (neighbours <= max_hidden)
    out = eem.copy()
    thick = eem - lum_smooth
    fidx = np.arange(eem.shape[0], dtype=np.float64)
    known = ~hidden
    for a in range(eem.shape[1]):
        vis = good & ~hidden[:, a]
        if vis.sum() < 2:
            continue
        fill = bad & hidden[:, a]
        if fill.any():
            t = np.interp(fidx[fill], fidx[vis], thick[vis, a])
            out[fill, a] = lum_smooth[fill, a] + t
            known[fill, a] = True
    # Bins hidden along the whole pullback (e.g. behind the guidewire): around the circle.
    rows = np.flatnonzero(bad)
    if rows.size:
        t = interpolate_hidden(out[rows] - lum_smooth[rows], ~known[rows])
        out[rows] = lum_smooth[rows] + t
    return out


class FrameBuilder:
    """Collects chunk detections and turns them into :class:`FrameMeasurement` objects."""

    def __init__(self, grid: PolarGrid, ctx: Context, pixel_spacing_mm: float | None,
                 frame_spacing_mm: float | None) -> None:
        self.grid = grid
        self.ctx = ctx
        self.ps = pixel_spacing_mm
        self.fs = frame_spacing_mm
        self.parts: list[tuple[int, detect.ChunkResult]] = []

    def add(self, start: int, res: detect.ChunkResult) -> None:
        """Store the detections of frames ``start ...``."""
        self.parts.append((start, res))

    def _cat(self, name: str) -> npt.NDArray[np.generic]:
        return np.concatenate([getattr(r, name) for _, r in self.parts], axis=0)

    def finish(self, assess: B, reasons: list[str]) -> list[FrameMeasurement]:
        """Gate, smooth along the pullback, measure and return one measurement per frame.

        Parameters
        ----------
        assess : numpy.ndarray
            ``(n,)`` frames assessable so far (signal and catheter checks of the pipeline).
        reasons : list of str
            Per frame, why it is not assessable so far ('' when it is); completed here with
            the side-branch and shape checks (:mod:`.quality`).
        """
        p = self.ctx.params
        step_px = self.grid.step_px
        step_mm = self.ctx.step_mm
        lum = np.asarray(self._cat("lumen"), dtype=np.float64)
        eem = np.asarray(self._cat("eem"), dtype=np.float64)
        hidden = np.asarray(self._cat("eem_hidden"), dtype=np.bool_)
        edge = np.asarray(self._cat("edge"), dtype=np.float64)
        calc = np.asarray(self._cat("calcium"), dtype=np.bool_)
        wire = np.asarray(self._cat("wire"), dtype=np.bool_)
        lum_s = np.asarray(self._cat("lumen_smooth"), dtype=np.float64)
        branch = np.asarray(self._cat("branch"), dtype=np.bool_)
        n = lum.shape[0]
        assess = assess.copy()
        reasons = list(reasons)
        for i in np.flatnonzero(assess & branch).tolist():
            assess[i], reasons[i] = False, quality.SIDE_BRANCH
        eem = fill_hidden_eem_along_pullback(eem, lum_s, hidden, assess)
        half = volume.half_window(self.fs, p.volume_half_window)
        if half > 0 and n >= 3:
            lum = ndimage.median_filter(lum, size=(3, 1), mode="nearest")
            eem = ndimage.median_filter(eem, size=(3, 1), mode="nearest")
        # The EEM is a smooth, nearly elliptical border: single-ray spikes (overlay text,
        # interpolation across short visible arcs) are replaced by a robust smooth fit.
        fit = robust_fourier_fit(eem, np.ones_like(hidden), order=6, iterations=3, clip=2.5)
        eem = np.where(np.abs(eem - fit) > p.eem_spike_mm / step_mm, fit, eem)
        # The smoothing must not pull the EEM back onto the calcium.
        behind = edge + p.eem_behind_calcium_mm / step_mm
        eem = np.where(calc, np.maximum(eem, behind), eem)
        # Pushing the EEM behind the calcium leaves steps at the ends of the arc: a smooth
        # fit of the pushed border, never inside the calcium, spreads them.
        fit = robust_fourier_fit(eem, np.ones_like(hidden), order=8, iterations=1)
        eem = np.where(calc, np.maximum(fit, behind), fit)
        center = self.grid.center
        lum_px = lum * step_px
        lum_contours = geometry.contours_from_radii(lum_px, center)
        eem_contours = geometry.contours_from_radii(eem * step_px, center)
        sizes = np.full((n, 3), np.nan)  # lumen area, EEM area (mm2), mean EEM diameter (mm)
        if self.ps is not None:
            s2 = self.ps * self.ps
            sizes[:, 0] = geometry.polygon_areas(lum_contours) * s2
            sizes[:, 1] = geometry.polygon_areas(eem_contours) * s2
            rows = np.flatnonzero(assess)
            if rows.size:
                dmin, dmax = geometry.min_max_diameters(eem_contours[rows])
                sizes[rows, 2] = 0.5 * (dmin + dmax) * self.ps
        for i in np.flatnonzero(assess).tolist():
            why = quality.shape_reason(lum[i], eem[i], lum_contours[i], eem_contours[i], p,
                                       p.lumen_outside_eem_mm / step_mm)
            if not why and self.ps is not None:
                why = quality.eem_size_reason(float(sizes[i, 2]), p)
            if why:
                assess[i], reasons[i] = False, why
        # Within the tolerance of the shape check the EEM is pushed out to the lumen.
        eem = np.maximum(eem, lum + p.min_plaque_mm / step_mm)
        eem_contours = geometry.contours_from_radii(eem * step_px, center)
        # Superficial: leading edge in the inner half of lumen..EEM along the ray.
        frac = (edge - lum) / np.maximum(eem - lum, 1.0)
        sup_rays = calc & (frac < 0.5)
        cents = geometry.polygon_centroids(lum_contours)
        edge_px = np.where(calc, edge, lum) * step_px
        cmask = geometry.rebin_masks(calc, edge_px, center, cents)
        smask = geometry.rebin_masks(sup_rays, edge_px, center, cents)
        # Guidewire gaps between calcium count as calcium (docs/scoring.md).
        bridged = np.zeros(n, dtype=np.bool_)
        gw = np.flatnonzero(wire.any(axis=1) & cmask.any(axis=1))
        if gw.size:
            allowed = geometry.rebin_masks(wire[gw], lum_px[gw], center, cents[gw])
            allowed = circular_dilate(allowed, 3)
            max_gap = int(p.guidewire_max_gap_deg)
            cm = geometry.fill_circular_gaps_rows(cmask[gw], max_gap, allowed)
            smask[gw] = geometry.fill_circular_gaps_rows(smask[gw], max_gap, allowed) & cm
            bridged[gw] = (cm & ~cmask[gw]).any(axis=1)
            cmask[gw] = cm
        cmask = volume.majority_along_pullback(cmask, assess, half)
        smask = volume.majority_along_pullback(smask, assess, half) & cmask
        min_bins = int(np.ceil(p.calcium_min_arc_deg * ANGLE_BINS / 360.0))
        # Not next to the guidewire: its reflection and shadow edges mimic a bulge.
        halo = circular_dilate(wire, p.wire_halo_deg)
        catheter = self.ctx.r0 + self.ctx.samples(p.nodule_catheter_clearance_mm)
        prot, prot_bin = volume.protrusion_mm(lum, edge, calc & ~halo, halo, step_mm,
                                              catheter_samples=catheter)
        cmask = volume.drop_narrow(cmask, min_bins)
        # Re-expressing rays about the lumen centroid leaves single-bin holes in an arc, and a
        # gap no wider than the angular smoothing of the rays (3 bins) is below the angular
        # resolution of the measurement.
        cmask = geometry.fill_circular_gaps_rows(cmask, 3)
        smask = geometry.fill_circular_gaps_rows(smask, 3) & cmask
        # Depth on every bin of the final mask (the vote along the pullback adds bins).
        depth_rows = [self._depth(calc[i], edge[i], lum[i], edge_px[i], cents[i], cmask[i])
                      for i in range(n)]
        nod_raw = assess & cmask.any(axis=1) & (prot >= p.nodule_protrusion_mm)
        min_nod = p.nodule_min_frames
        if self.fs is not None and self.fs > 0:
            min_nod = max(min_nod, int(np.ceil(p.nodule_min_length_mm / self.fs)))
        nodule = volume.consistent_runs(nod_raw, prot_bin, min_nod)
        out: list[FrameMeasurement] = []
        for i in range(n):
            flags: list[str] = []
            hid = float(hidden[i].mean())
            if assess[i] and hid > 0.25:
                flags.append(f"EEM interpolated over {round(hid * 360)} degrees")
            if assess[i] and bridged[i]:
                flags.append("guidewire shadow bridged between calcium")
            evidence: float | None = None
            if self.ps is not None and np.isfinite(prot[i]) and cmask[i].any():
                evidence = round(float(prot[i]), 3)
            m = self._measure(i, bool(assess[i]), lum_contours[i], eem_contours[i], sizes[i],
                              hidden[i], (float(cents[i, 0]), float(cents[i, 1])),
                              cmask[i], smask[i], bool(nodule[i]), depth_rows[i])
            out.append(replace(m, reason="" if assess[i] else reasons[i] or "not assessable",
                               flags=tuple(flags),
                               nodule_protrusion_mm=evidence if assess[i] else None))
        return out

    def _depth(self, calc: B, edge: F64, lum: F64, edge_px: F64, c: F64, cm: B) -> F64:
        """Lumen-to-leading-edge distance (mm) per bin about the lumen centroid."""
        out = np.full(ANGLE_BINS, np.nan)
        idx = np.flatnonzero(calc)
        if idx.size == 0:
            return out
        theta = np.deg2rad(geometry.bin_angles_deg()[idx])
        x = self.grid.center[0] + edge_px[idx] * np.cos(theta) - c[0]
        y = self.grid.center[1] + edge_px[idx] * np.sin(theta) - c[1]
        ang = np.mod(np.degrees(np.arctan2(y, x)), 360.0)
        order = np.argsort(ang)
        d = np.maximum(edge[idx] - lum[idx], 0.0) * self.ctx.step_mm
        bins = geometry.bin_angles_deg()
        vals = np.interp(bins, ang[order], d[order], period=360.0)
        out[cm] = vals[cm]
        return out

    def _measure(self, i: int, ok: bool, lc: F64, ec: F64, sizes: F64, hidden: B,
                 c: tuple[float, float], cm: B, sm: B, nodule: bool, depth: F64
                 ) -> FrameMeasurement:
        empty = np.zeros(ANGLE_BINS, dtype=np.bool_)
        if not ok:
            return FrameMeasurement(
                frame=i + 1, assessable=False, center=self.grid.center, lumen_contour=None,
                eem_contour=None, lumen_area_mm2=None, eem_area_mm2=None,
                eem_mean_diameter_mm=None, eem_interpolated_fraction=0.0,
                calcium_mask=empty, superficial_calcium_mask=empty.copy(),
                calcium_arc_deg=0.0, superficial_calcium_arc_deg=0.0, calcified_nodule=False,
                calcium_depth_mm=None)
        la: float | None = None
        ea: float | None = None
        dm: float | None = None
        if self.ps is not None:
            la, ea, dm = float(sizes[0]), float(sizes[1]), float(sizes[2])
        return FrameMeasurement(
            frame=i + 1, assessable=True, center=c, lumen_contour=lc, eem_contour=ec,
            lumen_area_mm2=la, eem_area_mm2=ea, eem_mean_diameter_mm=dm,
            eem_interpolated_fraction=float(hidden.mean()), calcium_mask=cm,
            superficial_calcium_mask=sm, calcium_arc_deg=geometry.mask_arc_deg(cm),
            superficial_calcium_arc_deg=geometry.mask_arc_deg(sm), calcified_nodule=nodule,
            calcium_depth_mm=depth if self.ps is not None else None)
