"""Render frames: backscatter map in polar (catheter-centred) -> speckle -> log -> Cartesian.

Physics-ish model (e.g. Bamber & Dickinson 1980 speckle simulation): complex Gaussian
scatterers weighted by the tissue backscatter amplitude, convolved with a separable Gaussian
point-spread function (axial resolution ~ 50 um at 40 MHz, lateral ~ 2 A-lines), envelope =
magnitude, log compression over a display dynamic range. Calcium has a bright leading edge,
an acoustic shadow behind it along the ray and optional reverberations at multiples of the
transducer-to-edge distance. The polar image is scan-converted with a precomputed bilinear
gather (no per-frame coordinate computation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter1d

from srservice.phantom.geometry import (
    CATHETER_RADIUS_MM,
    GUIDE_RADIUS_MM,
    MEDIA_MM,
    NPHI,
    FrameAnatomy,
)
from srservice.phantom.spec import CaseSpec

#: A-lines per rotation.
N_THETA = 512
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ScanGeometry:
    """Polar grid and the bilinear gather to Cartesian for one case."""

    rows: int
    n_r: int
    dr_mm: float
    fov_px: float
    center_px: tuple[float, float]
    idx: tuple[npt.NDArray[np.intp], ...]
    w: tuple[F32, ...]
    inside: npt.NDArray[np.bool_]
    theta_deg: npt.NDArray[np.float64]
    rho_mm: npt.NDArray[np.float64]


@lru_cache(maxsize=8)
def scan_geometry(
    rows: int, pixel_spacing_mm: float, center_px: tuple[float, float]
) -> ScanGeometry:
    """Return the polar grid and Cartesian gather for a ``rows`` x ``rows`` frame."""
    fov_px = rows / 2.0 - 3.0
    n_r = int(np.ceil(fov_px)) + 2
    dr = pixel_spacing_mm
    yy, xx = np.mgrid[0:rows, 0:rows].astype(np.float64)
    dx, dy = xx - center_px[0], yy - center_px[1]
    rho_px = np.hypot(dx, dy)
    th = np.mod(np.arctan2(dy, dx), 2 * np.pi) / (2 * np.pi) * N_THETA
    fr = np.minimum(rho_px, n_r - 1.001)
    j0 = np.floor(th).astype(np.intp) % N_THETA
    j1 = (j0 + 1) % N_THETA
    wt = (th - np.floor(th)).astype(np.float32)
    i0 = np.floor(fr).astype(np.intp)
    i1 = i0 + 1
    wr = (fr - i0).astype(np.float32)
    flat = (j0 * n_r + i0, j0 * n_r + i1, j1 * n_r + i0, j1 * n_r + i1)
    ws = ((1 - wt) * (1 - wr), (1 - wt) * wr, wt * (1 - wr), wt * wr)
    theta: npt.NDArray[np.float64] = np.arange(N_THETA, dtype=np.float64) * (360.0 / N_THETA)
    rho: npt.NDArray[np.float64] = np.arange(n_r, dtype=np.float64) * dr
    return ScanGeometry(
        rows, n_r, dr, fov_px, center_px,
        tuple(a.ravel() for a in flat), tuple(a.ravel() for a in ws),
        rho_px <= fov_px, theta, rho,
    )


def _tissue_params(freq_mhz: float) -> tuple[float, float, float]:
    """Return (blood amplitude, axial PSF sigma mm, attenuation 1/mm) for a frequency."""
    u = float(np.clip((freq_mhz - 40.0) / 20.0, 0.0, 1.0))
    blood = 0.05 + 0.17 * u**1.5
    sigma_ax = 0.022 * 40.0 / freq_mhz
    atten = 0.22 + 0.12 * u
    return blood, sigma_ax, atten


class SpeckleState:
    """Scatterer field carried from frame to frame.

    Tissue speckle is correlated between neighbouring frames (the elevation beam width,
    ~0.25 mm, is wider than the frame spacing): ``z_k = a z_{k-1} + sqrt(1 - a^2) w_k`` with
    ``a = exp(-frame_spacing / 0.25 mm)``. Blood scatterers move with the flow, so blood uses
    the fresh field ``w_k`` in every frame (blood speckle decorrelates frame to frame).
    """

    def __init__(self, shape: tuple[int, int], frame_spacing_mm: float,
                 rng: np.random.Generator, plaque_texture: F32) -> None:
        self.rng = rng
        self.a = float(np.exp(-frame_spacing_mm / 0.25))
        self.b = float(np.sqrt(1.0 - self.a**2))
        self.re = rng.standard_normal(shape, dtype=np.float32)
        self.im = rng.standard_normal(shape, dtype=np.float32)
        self.texture = plaque_texture

    def step(self) -> tuple[F32, F32, F32, F32]:
        """Advance one frame; return (tissue re, tissue im, fresh re, fresh im)."""
        w_re = self.rng.standard_normal(self.re.shape, dtype=np.float32)
        w_im = self.rng.standard_normal(self.re.shape, dtype=np.float32)
        self.re = self.a * self.re + self.b * w_re
        self.im = self.a * self.im + self.b * w_im
        return self.re, self.im, w_re, w_im


def plaque_texture(rng: np.random.Generator) -> F32:
    """Smooth log-normal echogenicity field over (angle, relative plaque depth)."""
    from scipy.ndimage import gaussian_filter

    field = rng.standard_normal((NPHI // 8, 16)).astype(np.float32)
    field = gaussian_filter(field, (6.0, 2.0), mode=("wrap", "nearest"))
    field /= max(float(field.std()), 1e-6)
    out: F32 = np.exp(0.35 * field).astype(np.float32)
    return out


def render_polar(
    spec: CaseSpec, geo: ScanGeometry, fa: FrameAnatomy, speckle: SpeckleState,
    seam_line: int,
) -> F32:
    """Return the log-compressed display image (0-255 float) on the polar grid."""
    th = np.deg2rad(geo.theta_deg)[:, None]
    rho = geo.rho_mm[None, :]
    blood, sig_ax, alpha = _tissue_params(spec.frequency_mhz)
    x = rho * np.cos(th) - fa.lumen_center_mm[0]
    y = rho * np.sin(th) - fa.lumen_center_mm[1]
    r = np.hypot(x, y)
    ip = (np.round(np.mod(np.degrees(np.arctan2(y, x)), 360.0) * (NPHI / 360.0)).astype(np.intp)
          % NPHI)
    amp = np.empty(r.shape, dtype=np.float32)
    rho_b = np.broadcast_to(rho, r.shape)
    if fa.assessable:
        rl, re = fa.r_lumen[ip], fa.r_eem[ip]
        branch = np.asarray(fa.branch)[ip]
        rel = np.clip((r - rl) / np.maximum(re - rl, 1e-3), 0.0, 0.999)
        amp[:] = 0.22 * speckle.texture[ip // 8, (rel * 16).astype(np.intp)]
        is_blood = r < rl
        amp[is_blood] = blood
        media = (r >= re - MEDIA_MM) & (r < re)
        amp[media] = 0.07
        adv = r >= re
        depth_out = r - re
        amp[adv] = (
            0.16 * np.exp(-depth_out / 1.0)
            + 0.9 * np.exp(-0.5 * ((depth_out - 0.12) / 0.1) ** 2)
        )[adv]
        br = branch & (r >= rl) & (r < re + 1.3)
        amp[br] = blood
        is_blood |= br
        amp[(r < rl) & (rho_b > 0)] *= 1.0
        # Nodule and smooth protrusion: calcium fills the bump.
        edge_r = fa.r_edge[ip]
        has_edge = ~np.isnan(edge_r) & fa.calcium_rendered
        t_edge = 0.07
        edge = has_edge & (r >= edge_r) & (r < edge_r + t_edge)
        amp[edge] = 4.0
        att = np.ones(r.shape, dtype=np.float32)
        hit: npt.NDArray[np.bool_] = np.asarray(edge.any(axis=1))
        first = np.argmax(edge, axis=1)
        n_edge = max(1, round(t_edge / geo.dr_mm))
        idx = np.arange(geo.n_r)[None, :]
        shadow = hit[:, None] & (idx > (first + n_edge)[:, None])
        att[shadow] = 0.035
        if fa.reverberations > 0:
            rho_first = first * geo.dr_mm
            for m in range(2, 2 + fa.reverberations):
                band = shadow & (np.abs(rho - m * rho_first[:, None]) < t_edge * 0.6)
                amp[band] = 0.7 * 0.35 ** (m - 2) / 0.035
        ap = np.asarray(fa.attenuated)[ip]
        ra = rl + 0.3 * (re - rl)
        atten_p = ap & (r > ra)
        att[atten_p] *= np.maximum(np.exp(-(r - ra) / 0.12), 0.03)[atten_p].astype(np.float32)
    else:
        amp[:] = 0.03
        ring = np.abs(rho_b - GUIDE_RADIUS_MM - 0.07) < 0.08
        amp[ring] = 2.5
        beyond = rho_b > GUIDE_RADIUS_MM + 0.15
        amp[beyond] = (0.12 * np.exp(-(rho_b - GUIDE_RADIUS_MM) / 0.8))[beyond]
        att = np.ones(r.shape, dtype=np.float32)
        is_blood = rho_b < GUIDE_RADIUS_MM
    # Guidewire: bright short arc and its narrow shadow.
    gw = fa.guidewire
    if gw is not None and fa.assessable:
        dth = np.mod(geo.theta_deg - gw.theta_deg + 180.0, 360.0) - 180.0
        arcdist = np.deg2rad(dth)[:, None] * gw.rho_mm
        blob = np.exp(-0.5 * ((rho - gw.rho_mm) / 0.035) ** 2 - 0.5 * (arcdist / 0.09) ** 2)
        amp += (6.0 * blob).astype(np.float32)
        sh = (np.abs(dth) < gw.shadow_deg / 2.0)[:, None] & (rho > gw.rho_mm + 0.06)
        att[sh] *= 0.03
    # Catheter: dark transducer, bright ring-down ring.
    ringdown = np.exp(-0.5 * ((rho_b - CATHETER_RADIUS_MM + 0.05) / 0.05) ** 2) + 0.25 * np.exp(
        -0.5 * ((rho_b - CATHETER_RADIUS_MM + 0.2) / 0.03) ** 2
    )
    amp = np.where(rho_b < CATHETER_RADIUS_MM, (3.0 * ringdown).astype(np.float32), amp)
    amp = amp * att * np.exp(-alpha * rho_b).astype(np.float32)
    amp += 0.004
    # Speckle: complex Gaussian scatterers convolved with the PSF; envelope.
    t_re, t_im, w_re, w_im = speckle.step()
    re_ = np.where(is_blood, w_re, t_re) * amp
    im_ = np.where(is_blood, w_im, t_im) * amp
    s_ax = sig_ax / geo.dr_mm
    s_lat = 1.6 * (40.0 / spec.frequency_mhz) ** 0.5
    for a in (re_, im_):
        gaussian_filter1d(a, s_ax, axis=1, output=a, mode="nearest")
        gaussian_filter1d(a, s_lat, axis=0, output=a, mode="wrap")
    norm = np.sqrt(2.0 * kernel_energy(s_ax) * kernel_energy(s_lat))
    env = np.sqrt(re_ * re_ + im_ * im_) / np.float32(norm)
    if spec.rotation_seam:
        env[seam_line : seam_line + 2, :] *= 0.04
    db = 20.0 * np.log10(env + 1e-6) + fa.gain_db
    dyn = 48.0
    x01 = np.clip((db + dyn - 4.0) / dyn, 0.0, 1.0)
    out: F32 = (255.0 * x01**1.5).astype(np.float32)
    return out


@lru_cache(maxsize=32)
def kernel_energy(sigma: float) -> float:
    """Sum of squared taps of the Gaussian kernel used by ``gaussian_filter1d``."""
    radius = int(4.0 * sigma + 0.5)
    xk = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (xk / sigma) ** 2)
    k /= k.sum()
    return float((k * k).sum())


def scan_convert(geo: ScanGeometry, polar: F32) -> npt.NDArray[np.uint8]:
    """Bilinear polar -> Cartesian using the precomputed gather; outside the FOV is 0."""
    p = polar.ravel()
    out = (
        geo.w[0] * p[geo.idx[0]] + geo.w[1] * p[geo.idx[1]]
        + geo.w[2] * p[geo.idx[2]] + geo.w[3] * p[geo.idx[3]]
    )
    out = out.reshape(geo.rows, geo.rows)
    out[~geo.inside] = 0.0
    img: npt.NDArray[np.uint8] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return img
