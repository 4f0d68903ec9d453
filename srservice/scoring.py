"""Pure calcium scores: the IVUS calcium score (Zhang 2021) and the OCT calcium score (Fujino 2018).

Rules, operational definitions and the choices the papers leave open: ``docs/scoring.md``.
This module imports only :mod:`srservice.analysis.types`; it never touches files or DICOM
objects.

IVUS calcium score (Zhang M, Matsumura M, Usui E, et al. Circ Cardiovasc Interv
2021;14:e010296), one point each:

- long superficial calcium: length of superficial calcium with arc > 270 degrees is > 5 mm;
- circumferential calcium: 360 degrees of superficial calcium in any frame;
- calcified nodule present;
- small vessel: vessel (mean EEM) diameter at the maximum calcium site < 3.5 mm.

Score >= 2 predicts stent underexpansion (< 70 % expansion at the maximum calcium site;
negative predictive value 0.94) and calls for calcium modification before stenting.

Choices the paper leaves open (documented in ``docs/scoring.md`` and in every report):

- Thresholds are strict (``> 5 mm``, ``< 3.5 mm``, ``> 270 degrees``, ``== 360 degrees``) and
  compared after rounding measured values to :data:`COMPARISON_DECIMALS` decimals, which
  removes floating-point representation error (25 frames x 0.2 mm = 5.000000000000001) but is
  far below any clinical rounding.
- A component that cannot be measured (no frame spacing, no pixel spacing) is *not
  assessable*: it gets ``points=None``. The total is then ``None`` (unknown) and the score is
  bracketed by ``minimum_total`` (not-assessable components count 0) and ``maximum_total``
  (they count their maximum). The recommendation is still given when the bracket decides it
  (``minimum_total >= 2`` -> True, ``maximum_total < 2`` -> False), else it is ``None``.
- The long-calcium component is assessable without frame spacing when no frame has a
  superficial arc > 270 degrees: the length is then 0 mm whatever the spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from srservice.analysis.types import LesionFeatures, PullbackAnalysis

#: Decimals kept before a measured value is compared with a threshold.
COMPARISON_DECIMALS = 6

#: Zhang 2021 thresholds.
LONG_CALCIUM_ARC_DEG = 270.0
LONG_CALCIUM_LENGTH_MM = 5.0
CIRCUMFERENTIAL_ARC_DEG = 360.0
SMALL_VESSEL_DIAMETER_MM = 3.5
RECOMMENDATION_THRESHOLD = 2
NEGATIVE_PREDICTIVE_VALUE = 0.94

#: Fujino 2018 thresholds.
OCT_ANGLE_DEG = 180.0
OCT_THICKNESS_MM = 0.5
OCT_LENGTH_MM = 5.0

#: Component names (stable identifiers, used as keys in JSON and mapped to codes in the SR).
LONG_CALCIUM = "long_superficial_calcium"
CIRCUMFERENTIAL = "circumferential_calcium"
NODULE = "calcified_nodule"
SMALL_VESSEL = "small_vessel"
OCT_ANGLE = "max_calcium_angle"
OCT_THICKNESS = "max_calcium_thickness"
OCT_LENGTH = "calcium_length"

CITATION_IVUS = "Zhang M, Matsumura M, Usui E, et al. Circ Cardiovasc Interv 2021;14:e010296"
CITATION_OCT = "Fujino A, Mintz GS, Matsumura M, et al. EuroIntervention 2018;13:e2182-e2189"

#: Wording of a score that cannot be given (the reports use exactly this phrase).
CANNOT_BE_DETERMINED = "cannot be determined"

DISCLAIMER = (
    "Automatically derived decision support; not verified by a physician. "
    "Review the images before any treatment decision."
)


@dataclass(frozen=True)
class ScoreComponent:
    """One component of a calcium score.

    Attributes
    ----------
    name : str
        Stable identifier, e.g. ``"long_superficial_calcium"``.
    points : int or None
        Points given (0 .. ``max_points``); None when not assessable.
    value : float, bool or None
        The measured value the points were derived from (None when not assessable).
    threshold : str
        The rule, human-readable, e.g. ``"> 5 mm"``.
    unit : str or None
        Unit of ``value`` (``"mm"``, ``"deg"``) or None for a yes/no finding.
    assessable : bool
        False when the value could not be measured.
    max_points : int
        Points the component gives when its rule is met.
    label : str
        Human-readable name for reports.
    reason : str
        Why the component is not assessable (empty when it is).
    """

    name: str
    points: int | None
    value: float | bool | None
    threshold: str
    unit: str | None
    assessable: bool
    max_points: int
    label: str = ""
    reason: str = ""


def _round(value: float) -> float:
    return round(float(value), COMPARISON_DECIMALS)


def _bracket(components: tuple[ScoreComponent, ...]) -> tuple[int | None, int, int]:
    known = sum(c.points for c in components if c.points is not None)
    unknown = sum(c.max_points for c in components if c.points is None)
    total = known if unknown == 0 and all(c.assessable for c in components) else None
    return total, known, known + unknown


@dataclass(frozen=True)
class IvusCalciumScore:
    """IVUS calcium score of one calcified segment (Zhang et al. 2021).

    Attributes
    ----------
    components : tuple of ScoreComponent
        Long superficial calcium, circumferential calcium, calcified nodule, small vessel.
    total : int or None
        Sum of the points (0-4); None when a component is not assessable.
    minimum_total, maximum_total : int
        Bracket of the total: not-assessable components counted as 0 and as their maximum.
    calcium_modification_recommended : bool or None
        True when the score is (certainly) >= 2, False when (certainly) < 2, None when the
        not-assessable components leave it open.
    outside_derivation_population : bool
        True when the maximum superficial calcium arc is <= 270 degrees: the paper's
        population had > 270 degrees, so the score was not validated there.
    max_superficial_calcium_arc_deg : float
        The lesion's maximum superficial arc (for the statements).
    """

    components: tuple[ScoreComponent, ...]
    total: int | None
    minimum_total: int
    maximum_total: int
    calcium_modification_recommended: bool | None
    outside_derivation_population: bool
    max_superficial_calcium_arc_deg: float

    @property
    def assessable(self) -> bool:
        """True when every component was assessable."""
        return all(c.assessable for c in self.components)

    def component(self, name: str) -> ScoreComponent:
        """Return the component called ``name`` (raises KeyError when unknown)."""
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def determinable(self) -> bool:
        """False when no component was assessable (nothing at all is known of the score)."""
        return any(c.assessable for c in self.components)

    @property
    def total_text(self) -> str:
        """The total as the reports print it.

        ``"2"``, or "cannot be determined" (with the bracket when some components are known,
        e.g. "cannot be determined (1-2)").
        """
        if self.total is not None:
            return str(self.total)
        if not self.determinable:
            return CANNOT_BE_DETERMINED
        return f"{CANNOT_BE_DETERMINED} ({self.minimum_total}-{self.maximum_total})"

    @property
    def recommendation(self) -> str:
        """The recommendation sentence written into the reports."""
        if not self.determinable:
            reasons = list(dict.fromkeys(c.reason for c in self.components if c.reason))
            return (f"IVUS calcium score {CANNOT_BE_DETERMINED}: " + "; ".join(reasons)
                    + ". No recommendation on calcium modification can be made.")
        if self.total is not None:
            score = f"IVUS calcium score {self.total}"
        else:
            score = (f"IVUS calcium score {CANNOT_BE_DETERMINED} (between "
                     f"{self.minimum_total} and {self.maximum_total}; not assessable: "
                     + ", ".join(c.label for c in self.components if not c.assessable) + ")")
        if self.calcium_modification_recommended is True:
            text = (f"{score}, >= 2: stent underexpansion predicted. Calcium modification "
                    "(orbital or rotational atherectomy, or intravascular lithotripsy) before "
                    "stenting is recommended.")
        elif self.calcium_modification_recommended is False:
            text = (f"{score}, < 2: stent underexpansion not predicted (negative predictive "
                    f"value {NEGATIVE_PREDICTIVE_VALUE:.2f}); the score does not call for "
                    "calcium modification.")
        else:
            text = f"{score}: the recommendation {CANNOT_BE_DETERMINED}."
        return text

    @property
    def statements(self) -> tuple[str, ...]:
        """Every caveat the reports must carry for this score."""
        out: list[str] = []
        if self.outside_derivation_population:
            out.append(
                f"Maximum superficial calcium arc {self.max_superficial_calcium_arc_deg:.0f} "
                "degrees is <= 270 degrees: this lesion lies outside the population the score "
                "was derived in (maximum superficial arc > 270 degrees); interpret with caution.")
        if self.determinable:  # otherwise the recommendation sentence already gives the reason
            for c in self.components:
                if not c.assessable:
                    out.append(f"{c.label} not assessable: {c.reason}")
        return tuple(out)


def _long_calcium(lesion: LesionFeatures) -> ScoreComponent:
    def make(points: int | None, value: float | None, reason: str = "") -> ScoreComponent:
        return ScoreComponent(name=LONG_CALCIUM, points=points, value=value,
                              threshold="> 5 mm with superficial arc > 270°", unit="mm",
                              assessable=points is not None, max_points=1,
                              label="Long superficial calcium", reason=reason)

    length = lesion.length_superficial_calcium_over_270_mm
    if length is None:
        if _round(lesion.max_superficial_calcium_arc_deg) <= LONG_CALCIUM_ARC_DEG:
            # No frame above 270 degrees: the length is 0 mm whatever the frame spacing.
            return make(0, 0.0)
        return make(None, None, "frame spacing (pullback rate) unknown")
    return make(int(_round(length) > LONG_CALCIUM_LENGTH_MM), float(length))


def _small_vessel(lesion: LesionFeatures) -> ScoreComponent:
    diameter = lesion.vessel_diameter_at_max_calcium_mm
    points = None if diameter is None else int(_round(diameter) < SMALL_VESSEL_DIAMETER_MM)
    return ScoreComponent(
        name=SMALL_VESSEL, points=points, value=None if diameter is None else float(diameter),
        threshold="< 3.5 mm", unit="mm", assessable=points is not None, max_points=1,
        label="Small vessel (mean EEM diameter)",
        reason="" if points is not None else "pixel spacing unknown or EEM not measurable")


def is_circumferential(superficial_arc_deg: float) -> bool:
    """Return True when a superficial arc is 360 degrees (Zhang 2021 'circumferential')."""
    return _round(superficial_arc_deg) >= CIRCUMFERENTIAL_ARC_DEG


def ivus_calcium_score(lesion: LesionFeatures) -> IvusCalciumScore:
    """Score one calcified segment with the IVUS calcium score of Zhang et al. 2021.

    Parameters
    ----------
    lesion : LesionFeatures
        Features of the calcified segment (``srservice.analysis.types``).

    Returns
    -------
    IvusCalciumScore
        Components with their measured values, total (None when not assessable), the
        bracket, the >= 2 recommendation and the derivation-population flag.

    Notes
    -----
    Circumferential calcium is counted when the analysis flagged it or when the maximum
    superficial arc is 360 degrees (the two say the same; either suffices).
    """
    circumferential = bool(lesion.circumferential_superficial_calcium
                           or is_circumferential(lesion.max_superficial_calcium_arc_deg))
    components = (
        _long_calcium(lesion),
        ScoreComponent(name=CIRCUMFERENTIAL, points=int(circumferential), value=circumferential,
                       threshold="360° superficial arc in a frame", unit=None,
                       assessable=True, max_points=1, label="Circumferential calcium"),
        ScoreComponent(name=NODULE, points=int(lesion.calcified_nodule),
                       value=bool(lesion.calcified_nodule), threshold="present", unit=None,
                       assessable=True, max_points=1, label="Calcified nodule"),
        _small_vessel(lesion),
    )
    total, low, high = _bracket(components)
    if low >= RECOMMENDATION_THRESHOLD:
        recommended: bool | None = True
    elif high < RECOMMENDATION_THRESHOLD:
        recommended = False
    else:
        recommended = None
    return IvusCalciumScore(
        components=components, total=total, minimum_total=low, maximum_total=high,
        calcium_modification_recommended=recommended,
        outside_derivation_population=(_round(lesion.max_superficial_calcium_arc_deg)
                                       <= LONG_CALCIUM_ARC_DEG),
        max_superficial_calcium_arc_deg=float(lesion.max_superficial_calcium_arc_deg),
    )


def highest_total(scores: Sequence[IvusCalciumScore]) -> int | None:
    """Return the highest score over lesions (0 without lesions; None when undecidable).

    A lesion whose total is unknown makes the result None only when its ``maximum_total``
    could exceed the highest known total.
    """
    known = [s.total for s in scores if s.total is not None]
    best = max(known, default=0)
    if any(s.total is None and s.maximum_total > best for s in scores):
        return None
    return best


def not_assessable_score(lesion: LesionFeatures, reason: str) -> IvusCalciumScore:
    """Return the score of a segment of a pullback that cannot be scored.

    Every component is not assessable with ``reason``; total None, no recommendation. The
    bracket is the whole range (0 to 4); the reports print "cannot be determined", not
    the bracket (:attr:`IvusCalciumScore.total_text`).
    """
    measured = ivus_calcium_score(lesion)
    components = tuple(ScoreComponent(name=x.name, points=None, value=None,
                                      threshold=x.threshold, unit=x.unit, assessable=False,
                                      max_points=x.max_points, label=x.label, reason=reason)
                       for x in measured.components)
    return IvusCalciumScore(
        components=components, total=None, minimum_total=0,
        maximum_total=sum(x.max_points for x in components),
        calcium_modification_recommended=None,
        outside_derivation_population=measured.outside_derivation_population,
        max_superficial_calcium_arc_deg=measured.max_superficial_calcium_arc_deg)


def score_lesions(lesions: Sequence[LesionFeatures], *,
                  reason: str = "") -> list[IvusCalciumScore]:
    """Return the IVUS calcium score of every lesion, in order.

    With ``reason`` (why the pullback cannot be scored, :func:`pullback_reason`), every
    score is :func:`not_assessable_score`.
    """
    if reason:
        return [not_assessable_score(lesion, reason) for lesion in lesions]
    return [ivus_calcium_score(lesion) for lesion in lesions]


def pullback_reason(analysis: PullbackAnalysis) -> str:
    """Why ``analysis`` cannot be scored as a whole; empty when it can.

    The analysis' own :attr:`~srservice.analysis.types.PullbackAnalysis.reason`; failing
    that, a pullback without any assessable frame is never scored (its score would read 0).
    """
    if analysis.reason:
        return analysis.reason
    if analysis.assessable_frame_count == 0:
        return "no assessable frame"
    return ""


@dataclass(frozen=True)
class PullbackScore:
    """What the reports say for the whole pullback.

    Attributes
    ----------
    segments : tuple of IvusCalciumScore
        One score per calcified segment (``analysis.lesions`` order).
    total : int or None
        Highest segment score (0 without a calcified segment); None when the pullback cannot
        be scored (:attr:`reason`) or a segment's unknown score could be the highest.
    calcium_modification_recommended : bool or None
        :func:`overall_recommendation`; None when the pullback cannot be scored.
    reason : str
        Why the pullback cannot be scored; empty when it can.
    """

    segments: tuple[IvusCalciumScore, ...]
    total: int | None
    calcium_modification_recommended: bool | None
    reason: str = ""

    @property
    def assessable(self) -> bool:
        """True when the pullback could be scored (the total may still be open)."""
        return not self.reason

    @property
    def total_text(self) -> str:
        """The total as the reports print it (``"2"`` or "cannot be determined")."""
        return CANNOT_BE_DETERMINED if self.total is None else str(self.total)

    @property
    def result(self) -> str:
        """One sentence: the pullback's score, or why it cannot be determined."""
        if self.reason:
            return f"IVUS calcium score {CANNOT_BE_DETERMINED}: {self.reason}"
        if self.total is None:
            return (f"IVUS calcium score {CANNOT_BE_DETERMINED}: a calcified segment with "
                    "not-assessable components could have the highest score")
        if not self.segments:
            return "IVUS calcium score 0 (no calcified segment)"
        return f"IVUS calcium score {self.total} (highest of {len(self.segments)} segment(s))"


def score_pullback(analysis: PullbackAnalysis,
                   scores: Sequence[IvusCalciumScore] | None = None) -> PullbackScore:
    """Score a whole pullback: every segment, the highest total and the recommendation.

    Parameters
    ----------
    analysis : PullbackAnalysis
        The analysis; when it cannot be scored (:func:`pullback_reason`), no component and no
        total are given.
    scores : sequence of IvusCalciumScore, optional
        Segment scores already computed with :func:`score_lesions` (ignored when the pullback
        cannot be scored).

    Returns
    -------
    PullbackScore
    """
    reason = pullback_reason(analysis)
    if reason:  # never a measured component, whatever was passed in
        return PullbackScore(segments=tuple(score_lesions(analysis.lesions, reason=reason)),
                             total=None, calcium_modification_recommended=None, reason=reason)
    segments = tuple(scores if scores is not None else score_lesions(analysis.lesions))
    return PullbackScore(segments=segments, total=highest_total(segments),
                         calcium_modification_recommended=overall_recommendation(segments))


def overall_recommendation(scores: Sequence[IvusCalciumScore]) -> bool | None:
    """Return whether the pullback calls for calcium modification before stenting.

    True when any segment's score recommends it; False when every segment's score decides
    against it (also when there is no calcified segment); None when no segment recommends it
    and at least one cannot be decided (its score is bracketed across the threshold).
    """
    decided = [s.calcium_modification_recommended for s in scores]
    if any(d is True for d in decided):
        return True
    if all(d is False for d in decided):
        return False
    return None


@dataclass(frozen=True)
class OctCalciumScore:
    """OCT calcium score (Fujino et al. EuroIntervention 2018).

    Attributes
    ----------
    components : tuple of ScoreComponent
        Maximum angle (> 180 deg: 2 points), maximum thickness (> 0.5 mm: 1), length (> 5 mm: 1).
    total : int or None
        0-4; None when a component is not assessable.
    minimum_total, maximum_total : int
        Bracket of the total as for :class:`IvusCalciumScore`.
    underexpansion_predicted : bool or None
        True for a score of 4 (stent expansion 78 % vs 96 % for 0-3); None when undecidable.
    """

    components: tuple[ScoreComponent, ...]
    total: int | None
    minimum_total: int
    maximum_total: int
    underexpansion_predicted: bool | None


def _oct_component(name: str, label: str, value: float | None, limit: float, unit: str,
                   points: int) -> ScoreComponent:
    if value is None:
        return ScoreComponent(name=name, points=None, value=None, threshold=f"> {limit:g} {unit}",
                              unit=unit, assessable=False, max_points=points, label=label,
                              reason="not measured")
    return ScoreComponent(name=name, points=points if _round(value) > limit else 0,
                          value=float(value), threshold=f"> {limit:g} {unit}", unit=unit,
                          assessable=True, max_points=points, label=label)


def oct_calcium_score(max_calcium_angle_deg: float | None,
                      max_calcium_thickness_mm: float | None,
                      calcium_length_mm: float | None) -> OctCalciumScore:
    """Score calcium on intravascular OCT (Fujino et al. EuroIntervention 2018).

    Parameters
    ----------
    max_calcium_angle_deg : float or None
        Maximum calcium angle; > 180 degrees gives 2 points.
    max_calcium_thickness_mm : float or None
        Maximum calcium thickness; > 0.5 mm gives 1 point.
    calcium_length_mm : float or None
        Calcium length; > 5 mm gives 1 point.

    Returns
    -------
    OctCalciumScore
        Score 4 predicts stent underexpansion. None inputs are not assessable.
    """
    components = (
        _oct_component(OCT_ANGLE, "Maximum calcium angle", max_calcium_angle_deg,
                       OCT_ANGLE_DEG, "deg", 2),
        _oct_component(OCT_THICKNESS, "Maximum calcium thickness", max_calcium_thickness_mm,
                       OCT_THICKNESS_MM, "mm", 1),
        _oct_component(OCT_LENGTH, "Calcium length", calcium_length_mm, OCT_LENGTH_MM, "mm", 1),
    )
    total, low, high = _bracket(components)
    predicted: bool | None = True if low == 4 else (False if high < 4 else None)
    return OctCalciumScore(components=components, total=total, minimum_total=low,
                           maximum_total=high, underexpansion_predicted=predicted)
