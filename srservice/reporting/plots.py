"""The drawings of the PDF page, each into a matplotlib :class:`~matplotlib.axes.Axes`.

- :func:`draw_score_table`: every score component with its measured value, threshold and
  points, per calcified segment;
- :func:`draw_profiles`: calcium arc (superficial and deep) and lumen / EEM area along the
  pullback in mm, with the 270-degree line and the counted > 270-degree run highlighted;
- :func:`draw_key_frame`: the maximum calcium frame (:func:`key_frame`) with lumen, EEM and
  the calcium arc drawn over it (geometry from :mod:`srservice.reporting.overlay`).

The page layout is :func:`srservice.reporting.pdf.render_pdf`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.transforms import Bbox

from srservice.analysis.types import FrameMeasurement, PullbackAnalysis
from srservice.reporting.assessability import not_assessable_groups
from srservice.reporting.overlay import arc_polylines, closed
from srservice.scoring import CANNOT_BE_DETERMINED, IvusCalciumScore, ScoreComponent, score_pullback

NOT_ASSESSABLE = "#9e9e9e"
SUPERFICIAL = "#d62728"
DEEP = "#ff9f40"
LUMEN = "#17becf"
VESSEL = "#e8d21d"


def _fmt_value(c: ScoreComponent) -> str:
    if not c.assessable or c.value is None:
        return "not assessable"
    if isinstance(c.value, bool):
        return "yes" if c.value else "no"
    return f"{c.value:.2f} {c.unit or ''}".strip()


def key_frame(analysis: PullbackAnalysis, scores: Sequence[IvusCalciumScore]) -> int | None:
    """Maximum calcium frame of the highest-scoring lesion.

    Without lesions: the assessable frame with the largest calcium arc (the middle frame when
    there is no calcium at all); without an assessable frame, the middle frame (shown with its
    not-assessable reason so the reader sees why); None without frames.
    """
    if not analysis.lesions:
        usable = [f for f in analysis.frames if f.assessable]
        if not usable:
            return analysis.frames[len(analysis.frames) // 2].frame if analysis.frames else None
        middle = usable[len(usable) // 2]
        most = max(usable, key=lambda f: f.calcium_arc_deg)
        return most.frame if most.calcium_arc_deg > 0 else middle.frame
    best = max(range(len(scores)),
               key=lambda i: (scores[i].maximum_total, scores[i].max_superficial_calcium_arc_deg))
    return analysis.lesions[best].max_calcium_frame


def draw_score_table(ax: Axes, analysis: PullbackAnalysis,
                     scores: Sequence[IvusCalciumScore]) -> None:
    """Draw the score table (one row per component, one total row per segment).

    A total that cannot be determined reads "cannot be determined" (with the bracket when
    some components are known) and gets no points; a pullback that cannot be scored gets one
    row saying so, never a 0.
    """
    ax.axis("off")
    pullback = score_pullback(analysis, scores)
    rows: list[list[str]] = []
    for i, (lesion, score) in enumerate(zip(analysis.lesions, pullback.segments, strict=True),
                                        start=1):
        seg = f"{i}: frames {lesion.start_frame}-{lesion.end_frame}"
        for c in score.components:
            rows.append([seg, c.label, _fmt_value(c), c.threshold,
                         "-" if c.points is None else str(c.points)])
            seg = ""
        arc = f"max. arc {score.max_superficial_calcium_arc_deg:.0f}°"
        if score.total is not None:
            rows.append(["", "IVUS calcium score", arc, "≥ 2: modify Ca", str(score.total)])
        else:
            bracket = (f"{score.minimum_total}-{score.maximum_total}" if score.determinable
                       else "-")
            rows.append(["", "IVUS calcium score", CANNOT_BE_DETERMINED, arc, bracket])
    if not rows:
        rows = ([["-", "No calcified segment", "-", "-", "0"]] if pullback.assessable else
                [["whole pullback", "IVUS calcium score", CANNOT_BE_DETERMINED,
                  "pullback not assessable", "-"]])
    if len(rows) > 16:   # keep one page: summarise the remaining segments
        rows = [*rows[:15], ["...", f"{len(analysis.lesions)} segments in total; see the SR",
                             "", "", ""]]
    table = ax.table(cellText=rows,
                     colLabels=["Segment", "Component", "Measured", "Threshold", "Points"],
                     colWidths=[0.16, 0.27, 0.20, 0.29, 0.08],
                     bbox=Bbox.from_bounds(0.0, 0.0, 1.0, 1.0),
                     cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    for (r, _), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e6e6e6")
        elif rows[r - 1][1] == "IVUS calcium score":
            cell.set_text_props(weight="bold")
            if rows[r - 1][2].startswith(CANNOT_BE_DETERMINED):
                cell.set_text_props(color="#a00000")


def draw_profiles(ax_arc: Axes, ax_area: Axes, analysis: PullbackAnalysis) -> None:
    """Draw the calcium arc and the lumen / EEM areas along the pullback."""
    fr = np.array([f.frame for f in analysis.frames], dtype=np.float64)
    spacing = analysis.frame_spacing_mm
    x = (fr - 1.0) * spacing if spacing else fr
    xlabel = "Distance from first frame (mm)" if spacing else "Frame number (frame spacing unknown)"
    sup = np.array([f.superficial_calcium_arc_deg for f in analysis.frames])
    tot = np.array([f.calcium_arc_deg for f in analysis.frames])
    ax_arc.fill_between(x, 0, tot, step="mid", color=DEEP, alpha=0.6, label="calcium, any depth")
    ax_arc.fill_between(x, 0, sup, step="mid", color=SUPERFICIAL, alpha=0.8,
                        label="superficial calcium")
    ax_arc.axhline(270, color="k", lw=0.8, ls="--", label="270°")
    for lesion in analysis.lesions:
        if lesion.over_270_start_frame is not None and lesion.over_270_end_frame is not None:
            a, b = lesion.over_270_start_frame, lesion.over_270_end_frame
            lo, hi = ((a - 1.5) * spacing, (b - 0.5) * spacing) if spacing else (a - .5, b + .5)
            ax_arc.axvspan(lo, hi, color="#7f3fbf", alpha=0.18, lw=0)
            label = (f"> 270°: {lesion.length_superficial_calcium_over_270_mm:.1f} mm"
                     if lesion.length_superficial_calcium_over_270_mm is not None
                     else "> 270° run")
            ax_arc.text((lo + hi) / 2, 392, label, ha="center", va="top", fontsize=6.5,
                        color="#5b2a91", bbox={"fc": "white", "ec": "none", "pad": 0.5})
        m = (lesion.max_calcium_frame - 1.0) * spacing if spacing else lesion.max_calcium_frame
        ax_arc.axvline(m, color="#444444", lw=0.6, ls=":")
    first = True
    for group in not_assessable_groups(analysis.frames):
        for a, b in group.ranges:
            lo, hi = ((a - 1.5) * spacing, (b - 0.5) * spacing) if spacing else (a - .5, b + .5)
            for ax in (ax_arc, ax_area):
                ax.axvspan(lo, hi, color=NOT_ASSESSABLE, alpha=0.3, lw=0,
                           label="not assessable" if first and ax is ax_arc else None)
            first = False
    ax_arc.set_ylim(0, 410)
    ax_arc.set_yticks([0, 90, 180, 270, 360])
    ax_arc.set_ylabel("Calcium arc (°)", fontsize=8)
    ax_arc.legend(fontsize=6.5, loc="lower right", ncol=3, frameon=False,
                  bbox_to_anchor=(1.0, 1.0), borderaxespad=0.1)
    lumen = np.array([np.nan if f.lumen_area_mm2 is None else f.lumen_area_mm2
                      for f in analysis.frames])
    eem = np.array([np.nan if f.eem_area_mm2 is None else f.eem_area_mm2
                    for f in analysis.frames])
    if np.isfinite(lumen).any() or np.isfinite(eem).any():
        ax_area.plot(x, eem, color="#8c6d00", lw=1.0, label="EEM area")
        ax_area.plot(x, lumen, color="#0b7a86", lw=1.0, label="lumen area")
        ax_area.set_ylabel("Area (mm²)", fontsize=8)
        ax_area.legend(fontsize=6.5, loc="center right", framealpha=0.8)
    else:
        ax_area.text(0.5, 0.5, "Areas not measured (pixel spacing unknown)",
                     transform=ax_area.transAxes, ha="center", va="center", fontsize=8)
        ax_area.set_yticks([])
    ax_area.set_xlabel(xlabel, fontsize=8)
    for ax in (ax_arc, ax_area):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.4)
        if len(x):
            lo, hi = float(x.min()), float(x.max())
            pad = 0.0 if hi > lo else 0.5  # one frame: avoid a singular axis
            ax.set_xlim(lo - pad, hi + pad)


def draw_key_frame(ax: Axes, pixels: np.ndarray | None, frame: FrameMeasurement | None,
                   pixel_spacing_mm: float | None, title: str) -> None:
    """Draw one frame with its lumen and EEM contours and the calcium arc pieces."""
    ax.set_xticks([])
    ax.set_yticks([])
    if pixels is None or frame is None:
        ax.text(0.5, 0.5, "No assessable frame to show", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        return
    ax.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if not frame.assessable:
        ax.set_title(f"{title}; frame {frame.frame} not assessable: "
                     f"{frame.reason or 'no reason given'}", fontsize=7.5)
        return
    if frame.lumen_contour is not None:
        p = closed(frame.lumen_contour)
        ax.plot(p[:, 0], p[:, 1], color=LUMEN, lw=1.0, label="lumen")
    if frame.eem_contour is not None:
        p = closed(frame.eem_contour)
        ax.plot(p[:, 0], p[:, 1], color=VESSEL, lw=1.0, label="EEM")
    deep = frame.calcium_mask & ~frame.superficial_calcium_mask
    for mask, color, name in ((frame.superficial_calcium_mask, SUPERFICIAL, "superficial Ca"),
                              (deep, DEEP, "deep Ca")):
        for k, (pts, _) in enumerate(arc_polylines(frame, mask)):
            ax.plot(pts[:, 0], pts[:, 1], color=color, lw=2.2, label=name if k == 0 else None)
    ax.plot(*frame.center, marker="+", color="white", ms=6, mew=0.8)
    ax.legend(fontsize=6.5, loc="lower right", framealpha=0.6)
    ax.set_title(f"{title}: frame {frame.frame}  (superficial arc "
                 f"{frame.superficial_calcium_arc_deg:.0f}°, any depth "
                 f"{frame.calcium_arc_deg:.0f}°)", fontsize=7.5)
