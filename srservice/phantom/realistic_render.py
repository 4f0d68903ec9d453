"""Render realistic frames: tissue levels (dB) -> speckle -> log display -> Cartesian + overlays.

The image model reproduces what real 40-60 MHz console exports look like (figures of real
pullbacks in docs/phantom.md): a soft radial hill of grey levels rather than sharp rings,
bright coarse blood speckle almost as bright as plaque (red-cell aggregation at high
frequency: de Kroon et al., Ultrasound Med Biol 1991;17:301-14), a faint dark media band
instead of a bright ring, bright fibrous plaque without a shadow, calcium drawn as a
fragmented saturated leading edge over one continuous, partly permeable shadow with ragged
lateral edges and reverberations (Mintz et al., JACC 2001;37:1478-92), a guidewire dot with a
narrow shadow, side-branch take-offs (the lumen opens outward, dark carina, no bright edge),
the guide catheter, a burnt-in grey field-of-view ring, 1 mm calibration dots and a text label.

Speckle: complex Gaussian scatterers weighted by the level map and convolved with a separable
Gaussian point-spread function (Bamber & Dickinson, Phys Med Biol 1980;25:463-79). Tissue
scatterers are partially correlated frame to frame (the elevation beam is wider than the frame
spacing); blood scatterers are renewed every frame and pre-smoothed (aggregates: coarse grain).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw
from scipy.ndimage import distance_transform_edt, gaussian_filter, gaussian_filter1d

from srservice.phantom.geometry import CATHETER_RADIUS_MM, GUIDE_RADIUS_MM, NPHI
from srservice.phantom.realistic_geometry import RealisticFrame, RealisticSpec
from srservice.phantom.render import ScanGeometry, kernel_energy

#: A-lines per rotation.
N_ALINES = 512
#: Radial sample step of the polar image (mm).
DR_MM = 0.015
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

#: Display dynamic range (dB): grey = 255 * (dB - FLOOR_DB) / DYN_DB (log compression).
DYN_DB = 34.0
#: Display floor (dB): the mean log envelope of plaque (0 dB level) maps to grey ~143.
FLOOR_DB = -2.5 - 0.56 * DYN_DB
#: Electronic noise floor (dB), just above the display floor (grey ~12).
NOISE_DB = FLOOR_DB + 3.5
#: Point-spread function: axial sigma (mm) and lateral sigma (A-lines; ~6.7 degrees).
AXIAL_SIGMA_MM = 0.06
LATERAL_SIGMA_LINES = 9.5
#: Display smoothing in the log domain (console image processing): radial mm, A-lines.
POST_SIGMA_MM = 0.025
POST_SIGMA_LINES = 1.0
#: Blood scatterer pre-smoothing (samples, A-lines): aggregates give coarse speckle.
BLOOD_SIGMA = 1.6


@lru_cache(maxsize=16)
def display_geometry(
    rows: int, pixel_spacing_mm: float, center_px: tuple[float, float], fov_mm: float
) -> ScanGeometry:
    """Polar grid (``N_ALINES`` x radii at :data:`DR_MM`) and its bilinear gather to pixels.

    ``fov_mm`` is the displayed depth; its ring lies at ``fov_mm / pixel_spacing_mm`` pixels
    (clipped to the frame), so a display-depth change resizes ring and catheter.
    """
    fov_px = min(rows / 2.0 - 4.0, fov_mm / pixel_spacing_mm)
    n_r = int(np.ceil(fov_px * pixel_spacing_mm / DR_MM)) + 2
    yy, xx = np.mgrid[0:rows, 0:rows].astype(np.float64)
    dx, dy = xx - center_px[0], yy - center_px[1]
    rho_px = np.hypot(dx, dy)
    th = np.mod(np.arctan2(dy, dx), 2 * np.pi) / (2 * np.pi) * N_ALINES
    fr = np.minimum(rho_px * pixel_spacing_mm / DR_MM, n_r - 1.001)
    j0 = np.floor(th).astype(np.intp) % N_ALINES
    j1 = (j0 + 1) % N_ALINES
    wt = (th - np.floor(th)).astype(np.float32)
    i0 = np.floor(fr).astype(np.intp)
    wr = (fr - i0).astype(np.float32)
    flat = (j0 * n_r + i0, j0 * n_r + i0 + 1, j1 * n_r + i0, j1 * n_r + i0 + 1)
    ws = ((1 - wt) * (1 - wr), (1 - wt) * wr, wt * (1 - wr), wt * wr)
    theta = np.arange(N_ALINES, dtype=np.float64) * (360.0 / N_ALINES)
    rho = np.arange(n_r, dtype=np.float64) * DR_MM
    return ScanGeometry(
        rows, n_r, DR_MM, fov_px, center_px,
        tuple(a.ravel() for a in flat), tuple(a.ravel() for a in ws),
        rho_px <= fov_px, theta, rho,
    )


def _field2(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...],
            modes: tuple[str, ...]) -> tuple[F32, F32]:
    """Two independent smooth unit-variance random fields."""
    out = []
    for _ in range(2):
        f = gaussian_filter(rng.standard_normal(shape), sigma, mode=modes)
        out.append((f / max(float(f.std()), 1e-9)).astype(np.float32))
    return out[0], out[1]


def _mix(pair: tuple[F32, F32], z_mm: float, period_mm: float) -> F32:
    """Field slowly changing along the pullback (constant variance)."""
    a = 2 * np.pi * z_mm / period_mm
    return np.asarray(np.cos(a) * pair[0] + np.sin(a) * pair[1], dtype=np.float32)


@dataclass
class RenderState:
    """Random fields of one case, carried from frame to frame."""

    rng: np.random.Generator
    tissue_re: F32
    tissue_im: F32
    corr: float
    texture: tuple[F32, F32]
    fragments: tuple[F32, F32]
    thickness: tuple[F32, F32]
    shadow_var: tuple[F32, F32]
    strands: tuple[F32, F32]
    gap_quantile: float

    @classmethod
    def new(cls, spec: RealisticSpec, n_r: int) -> RenderState:
        """Fields for ``spec`` (deterministic given the seed)."""
        rng = np.random.default_rng(spec.base.seed + 99)
        shape = (N_ALINES, n_r)
        # Tissue scatterers decorrelate over ~0.2 mm of pullback (elevation beam width).
        corr = float(np.exp(-spec.base.frame_spacing_mm / 0.3))
        return cls(
            rng=rng,
            tissue_re=rng.standard_normal(shape, dtype=np.float32),
            tissue_im=rng.standard_normal(shape, dtype=np.float32),
            corr=corr,
            texture=_field2(rng, (NPHI // 8, 24), (8.0, 2.0), ("wrap", "nearest")),
            fragments=_field2(rng, (NPHI,), (6.0,), ("wrap",)),
            thickness=_field2(rng, (NPHI,), (20.0,), ("wrap",)),
            shadow_var=_field2(rng, (N_ALINES, 48), (3.0, 2.0), ("wrap", "nearest")),
            strands=_field2(rng, (N_ALINES, 160), (4.0, 1.5), ("wrap", "nearest")),
            gap_quantile=float(spec.edge_gap_frac),
        )

    def step(self, n_r: int) -> tuple[F32, F32, F32, F32]:
        """Advance the tissue scatterers; return tissue and fresh coarse blood fields."""
        shape = (N_ALINES, n_r)
        if self.tissue_re.shape != shape:  # display depth changed: new radial extent
            self.tissue_re = self.rng.standard_normal(shape, dtype=np.float32)
            self.tissue_im = self.rng.standard_normal(shape, dtype=np.float32)
        a, b = self.corr, float(np.sqrt(1.0 - self.corr**2))
        self.tissue_re = a * self.tissue_re + b * self.rng.standard_normal(shape, dtype=np.float32)
        self.tissue_im = a * self.tissue_im + b * self.rng.standard_normal(shape, dtype=np.float32)
        blood = []
        for _ in range(2):
            f = gaussian_filter(self.rng.standard_normal(shape, dtype=np.float32),
                                (BLOOD_SIGMA, BLOOD_SIGMA), mode=("wrap", "nearest"))
            blood.append((f * np.float32(_blood_norm())).astype(np.float32))
        return self.tissue_re, self.tissue_im, blood[0], blood[1]


def _smoothstep(x: npt.NDArray[np.floating]) -> F32:
    x = np.clip(x, 0.0, 1.0)
    return np.asarray(x * x * (3.0 - 2.0 * x), dtype=np.float32)


def _guide_levels(rho: npt.NDArray[np.float64], n_lines: int) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Levels inside the guide catheter: blood, bright braided wall, shadowed beyond."""
    r = np.broadcast_to(rho[None, :], (n_lines, len(rho)))
    lv = np.where(r < GUIDE_RADIUS_MM, -5.0, -22.0 - 6.0 * (r - GUIDE_RADIUS_MM))
    wall = np.exp(-0.5 * ((r - GUIDE_RADIUS_MM - 0.05) / 0.04) ** 2)
    lv = np.maximum(lv, -30.0 + 48.0 * wall)
    for m in (2, 3):
        rev = np.exp(-0.5 * ((r - m * (GUIDE_RADIUS_MM + 0.05)) / 0.03) ** 2)
        lv = np.maximum(lv, -30.0 + (22.0 - 8.0 * m) * rev)
    return lv.astype(np.float32), np.asarray(r < GUIDE_RADIUS_MM)


def levels(
    spec: RealisticSpec, rf: RealisticFrame, geo: ScanGeometry, state: RenderState, z_mm: float
) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
    """Return the level map (dB re plaque), shadowing (dB) and blood mask on the polar grid.

    The shadowing is applied along the beam after beam forming (:func:`speckle_image`).
    """
    fa = rf.anatomy
    th = np.deg2rad(geo.theta_deg)[:, None]
    rho = geo.rho_mm[None, :]
    n_r = geo.n_r
    if rf.guide:
        g, blood = _guide_levels(geo.rho_mm, N_ALINES)
        return _catheter(g, rho, n_r), np.zeros(g.shape, dtype=np.float32), blood
    x = rho * np.cos(th) - fa.lumen_center_mm[0]
    y = rho * np.sin(th) - fa.lumen_center_mm[1]
    r = np.hypot(x, y).astype(np.float32)
    ip = (np.round(np.mod(np.degrees(np.arctan2(y, x)), 360.0) * (NPHI / 360.0)).astype(np.intp)
          % NPHI)
    rl = fa.r_lumen[ip].astype(np.float32)
    re = fa.r_eem[ip].astype(np.float32)
    thick = np.maximum(re - rl, 0.05)
    rel = np.clip((r - rl) / thick, 0.0, 0.999)
    tex = _mix(state.texture, z_mm, 3.0)
    lv = 4.5 * tex[ip // 8, (rel * 24).astype(np.intp)]
    # bright fibrous plaque (no shadow): inner part of the plaque
    fib = rf.fibrous[ip]
    if fib.any():
        lv = lv + np.where(fib, 13.0 * np.exp(-0.5 * ((rel - 0.3) / 0.2) ** 2), 0.0)
    # faint dark media band at the outer edge of the plaque
    lv = lv - 6.0 * np.exp(-0.5 * ((r - (re - 0.06)) / 0.05) ** 2)
    # adventitia and perivascular tissue: slightly brighter, then fading with depth
    d_out = r - re
    d_pos = np.maximum(d_out, 0)
    adv_tex = tex[(ip // 8 + 90) % tex.shape[0], 20]
    adv = ((17.0 + 4.0 * adv_tex) * np.exp(-d_pos / 0.08) + 2.0 * np.exp(-d_pos / 0.6)
           - 9.0 * d_pos)
    lv = np.where(d_out > 0, np.maximum(lv * np.exp(-d_pos / 0.4) + adv, -15.0), lv)
    # bright perivascular strands (fibrous tissue, fat septa): sparse, unshadowed
    st = _mix(state.strands, z_mm, 2.5)[:, np.minimum(np.arange(n_r) * 160 // n_r, 159)]
    lv = np.where((d_out > 0.15) & (st > 1.9), np.maximum(lv, 9.0 - 3.0 * d_pos), lv)
    # blood: a texture change rather than an intensity step at the lumen border
    w_blood = 1.0 - _smoothstep((r - rl + 0.03) / 0.06)
    lv = lv * (1 - w_blood) + spec.blood_db * w_blood
    is_blood = r < rl
    att_db = np.zeros(lv.shape, dtype=np.float32)
    # side-branch take-off: the lumen opens outward, dark carina at the edges, no bright edge
    if rf.side_branch or fa.branch.any():
        br = fa.branch
        ext = np.concatenate([br, br, br]).astype(np.uint8)
        edge_deg = distance_transform_edt(ext)[NPHI : 2 * NPHI] * (360.0 / NPHI)
        depth = 1.3
        in_b = br[ip] & (r >= rl - 0.02) & (r < re + depth)
        carina = in_b & (edge_deg[ip] < 7.0) & (r > rl + 0.15)
        lv = np.where(in_b, spec.blood_db, lv)
        lv = np.where(carina, -17.0, lv)
        far = br[ip] & (r >= re + depth)
        lv = np.where(far, -2.0 - 8.0 * (r - re - depth), lv)
        is_blood = is_blood | (in_b & ~carina)
    # attenuated plaque: progressive shadowing without a bright leading edge
    if fa.attenuated.any():
        ra = rl + 0.3 * thick
        att = fa.attenuated[ip] & (r > ra)
        att_db = np.where(att, att_db - 11.0 * _smoothstep((r - ra) / 0.6), att_db)
    lv = lv.astype(np.float32)
    # calcium: fragmented saturated leading edge over one continuous, permeable shadow
    if fa.calcium_rendered and not np.all(np.isnan(fa.r_edge)):
        _calcium(spec, fa.r_edge, fa.nodule_weight, ip, r, lv, att_db, geo, state, z_mm)
    # guidewire: bright dot and a narrow dark shadow
    gw = fa.guidewire
    if gw is not None:
        dth = np.mod(geo.theta_deg - gw.theta_deg + 180.0, 360.0) - 180.0
        arcd = np.deg2rad(dth)[:, None] * gw.rho_mm
        blob = np.exp(-0.5 * ((rho - gw.rho_mm) / 0.035) ** 2 - 0.5 * (arcd / 0.06) ** 2)
        soft = 1.0 - _smoothstep((np.abs(dth) - gw.shadow_deg / 2.0 + 1.5) / 3.0)
        sh = soft[:, None] * _smoothstep((rho - gw.rho_mm - 0.04) / 0.05)
        att_db -= (32.0 * sh).astype(np.float32)
        lv = np.maximum(lv, (-30.0 + 54.0 * blob).astype(np.float32))
    return _catheter(lv, rho, n_r), att_db.astype(np.float32), is_blood


def _catheter(lv: F32, rho: npt.NDArray[np.float64], n_r: int) -> F32:
    """Draw the catheter: dark transducer and the bright ring-down ring."""
    rc = CATHETER_RADIUS_MM
    ring = np.exp(-0.5 * ((rho - (rc - 0.05)) / 0.03) ** 2)
    inner = np.exp(-0.5 * ((rho - (rc - 0.22)) / 0.02) ** 2)
    cath = np.broadcast_to((-34.0 + 44.0 * ring + 26.0 * inner).astype(np.float32), (N_ALINES, n_r))
    return np.asarray(np.where(rho < rc - 0.02, np.maximum(cath, -34.0), lv), dtype=np.float32)


def _calcium(
    spec: RealisticSpec, r_edge: npt.NDArray[np.float64], nod_w: npt.NDArray[np.float64],
    ip: npt.NDArray[np.intp], r: F32, lv: F32, att_db: F32, geo: ScanGeometry,
    state: RenderState, z_mm: float,
) -> None:
    """Draw calcium into ``lv`` and its shadow into ``att_db`` in place."""
    frag = _mix(state.fragments, z_mm, 2.0)
    thr = np.quantile(frag, state.gap_quantile)
    frag_db = np.where(frag > thr, 0.0, -12.0).astype(np.float32)
    t_edge = (0.09 + 0.035 * _mix(state.thickness, z_mm, 4.0)).clip(0.04, 0.16)
    t_edge = np.where(nod_w > 0.3, np.maximum(t_edge, 0.18), t_edge)
    er = r_edge[ip]
    te = t_edge[ip]
    has = ~np.isnan(er)
    er0 = np.nan_to_num(er, nan=1e9).astype(np.float32)
    edge = has & (r >= er0) & (r < er0 + te)
    hit = edge.any(axis=1)
    if not hit.any():
        return
    first = np.where(hit, np.argmax(edge, axis=1), 10**6)
    n_edge = max(2, round(0.1 / geo.dr_mm))
    # continuous shadow: A-lines between fragments and the ragged lateral edges
    start = first.astype(np.float64)
    big = 10**6
    grown = start.copy()
    for s in (-2, -1, 1, 2):
        grown = np.minimum(grown, np.roll(start, s))
    grown = np.where(grown >= big, big, grown)
    s_line = (grown < big).astype(np.float32)
    s_soft = gaussian_filter1d(s_line, 1.2, mode="wrap")
    idx = np.arange(geo.n_r)[None, :]
    sv = state.shadow_var[0]
    ragged = sv[:, np.minimum(idx[0] * 48 // geo.n_r, 47)]
    w = np.clip((s_soft[:, None] - 0.5) * 2.5 + 0.5 + 0.9 * ragged, 0.0, 1.0)
    w = np.where(s_soft[:, None] > 0.02, w, 0.0)
    behind = idx > (np.where(grown < big, grown, big) + n_edge)[:, None]
    shadow = (w * behind).astype(np.float32)
    keep_db = 20.0 * np.log10(spec.shadow_keep) + 2.5 * state.shadow_var[1][:, :1]
    att_db += shadow * keep_db.astype(np.float32)
    # reverberations: echoes at multiples of the transducer-to-edge distance
    rho_first = np.where(hit, first, 0) * geo.dr_mm
    rho = geo.rho_mm[None, :]
    for m in (2, 3):
        band = np.exp(-0.5 * ((rho - m * rho_first[:, None]) / 0.025) ** 2) * hit[:, None]
        lv[:] = np.maximum(lv, (lv + (shadow * band) * (-keep_db - 6.0 * (m - 1))))
    # the leading edge itself: saturated fragments with short dim gaps
    edge_db = 21.0 + frag_db[ip]
    lv[:] = np.where(edge, np.maximum(lv, edge_db), lv)


def speckle_image(
    lv: F32, att_db: F32, is_blood: npt.NDArray[np.bool_], state: RenderState, gain_db: float
) -> F32:
    """Speckle, point-spread function, shadowing, noise, envelope and log display (0-255)."""
    n_r = lv.shape[1]
    t_re, t_im, b_re, b_im = state.step(n_r)
    noise2 = (0.6 + 0.2 * (b_re * b_re + b_im * b_im)) * np.float32(10.0 ** (NOISE_DB / 10.0))
    amp = np.power(np.float32(10.0), lv / np.float32(20.0)).astype(np.float32)
    re_ = np.where(is_blood, b_re, t_re) * amp
    im_ = np.where(is_blood, b_im, t_im) * amp
    s_ax = AXIAL_SIGMA_MM / DR_MM
    for a in (re_, im_):
        gaussian_filter1d(a, s_ax, axis=1, output=a, mode="nearest")
        gaussian_filter1d(a, LATERAL_SIGMA_LINES, axis=0, output=a, mode="wrap")
    norm = np.sqrt(2.0 * kernel_energy(s_ax) * kernel_energy(LATERAL_SIGMA_LINES))
    shade = np.power(np.float32(10.0), gaussian_filter1d(att_db, 1.0, axis=0, mode="wrap")
                     / np.float32(10.0))
    env = np.sqrt((re_ * re_ + im_ * im_) * shade / np.float32(norm * norm) + noise2)
    db = 20.0 * np.log10(env + 1e-6) + gain_db
    db = gaussian_filter(db, (POST_SIGMA_LINES, POST_SIGMA_MM / DR_MM), mode=("wrap", "nearest"))
    return np.asarray(np.clip((db - FLOOR_DB) * (255.0 / DYN_DB), 0.0, 255.0), dtype=np.float32)


@lru_cache(maxsize=1)
def _blood_norm() -> float:
    """Scale making pre-smoothed blood scatterers as bright as white ones after the PSF."""
    s_ax = AXIAL_SIGMA_MM / DR_MM
    ratio = 1.0
    for s_psf in (s_ax, LATERAL_SIGMA_LINES):
        comb = float(np.hypot(BLOOD_SIGMA, s_psf))
        ratio *= kernel_energy(comb) / (kernel_energy(BLOOD_SIGMA) * kernel_energy(s_psf))
    return float(1.0 / np.sqrt(ratio * kernel_energy(BLOOD_SIGMA) ** 2))




def to_pixels(geo: ScanGeometry, polar: F32) -> U8:
    """Bilinear polar -> Cartesian with the precomputed gather; outside the FOV is 0."""
    p = polar.ravel()
    out = (geo.w[0] * p[geo.idx[0]] + geo.w[1] * p[geo.idx[1]]
           + geo.w[2] * p[geo.idx[2]] + geo.w[3] * p[geo.idx[3]]).reshape(geo.rows, geo.rows)
    out[~geo.inside] = 0.0
    return np.asarray(np.clip(out + 0.5, 0, 255), dtype=np.uint8)


@lru_cache(maxsize=16)
def overlay_layers(
    rows: int, center_px: tuple[float, float], fov_px: float, pixel_spacing_mm: float, label: str
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Return (grey ring mask, bright marks mask): FOV ring; 1 mm dots and the text label."""
    yy, xx = np.mgrid[0:rows, 0:rows]
    rr = np.hypot(xx - center_px[0], yy - center_px[1])
    ring = (rr >= fov_px + 0.5) & (rr < fov_px + 2.5)
    marks = np.zeros((rows, rows), dtype=bool)
    cx, cy = round(center_px[0]), round(center_px[1])
    step = 1.0 / pixel_spacing_mm
    for s in range(1, int(fov_px / step) + 1):
        off = round(s * step)
        for px, py in ((cx + off, cy), (cx - off, cy), (cx, cy + off), (cx, cy - off)):
            marks[max(py - 1, 0) : py + 1, max(px - 1, 0) : px + 1] = True
    img = Image.new("L", (rows, rows), 0)
    ImageDraw.Draw(img).text((4, rows - 14), label, fill=255)
    marks |= np.asarray(img) > 0
    return ring, marks


def burn_overlays(img: U8, ring: npt.NDArray[np.bool_], marks: npt.NDArray[np.bool_]) -> U8:
    """Burn the grey ring and the bright marks into a frame."""
    out = img.copy()
    out[ring] = 140
    out[marks] = 235
    return out


__all__ = [
    "N_ALINES",
    "RenderState",
    "burn_overlays",
    "display_geometry",
    "levels",
    "overlay_layers",
    "speckle_image",
    "to_pixels",
]
