"""Table-driven tests of the IVUS (Zhang 2021) and OCT (Fujino 2018) calcium scores."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from srservice import scoring
from srservice.analysis.types import LesionFeatures
from srservice.scoring import highest_total, ivus_calcium_score, oct_calcium_score


def lesion(**kw: Any) -> LesionFeatures:
    base: dict[str, Any] = dict(
        start_frame=10, end_frame=60, max_calcium_frame=30,
        max_superficial_calcium_arc_deg=300.0,
        length_superficial_calcium_over_270_mm=2.0, over_270_start_frame=25,
        over_270_end_frame=34, circumferential_superficial_calcium=False,
        calcified_nodule=False, vessel_diameter_at_max_calcium_mm=3.8,
        lumen_area_at_max_calcium_mm2=5.0, eem_interpolated_fraction_at_max_calcium=0.3,
        calcium_length_mm=10.0)
    base.update(kw)
    return LesionFeatures(**base)


def points(score: scoring.IvusCalciumScore) -> dict[str, int | None]:
    return {c.name: c.points for c in score.components}


# (description, lesion overrides, expected points per component, total)
CASES = [
    ("paper: 360-degree calcium alone scores 1",
     dict(max_superficial_calcium_arc_deg=360.0, circumferential_superficial_calcium=True,
          length_superficial_calcium_over_270_mm=3.0), (0, 1, 0, 0), 1),
    ("paper: >270 length 4.1 mm gives 0", dict(length_superficial_calcium_over_270_mm=4.1),
     (0, 0, 0, 0), 0),
    ("paper: >270 length 8.9 mm gives 1", dict(length_superficial_calcium_over_270_mm=8.9),
     (1, 0, 0, 0), 1),
    ("length 5.0 mm is not > 5", dict(length_superficial_calcium_over_270_mm=5.0),
     (0, 0, 0, 0), 0),
    ("length 5.01 mm is > 5", dict(length_superficial_calcium_over_270_mm=5.01),
     (1, 0, 0, 0), 1),
    ("25 x 0.2 mm float error is still 5.0", dict(length_superficial_calcium_over_270_mm=25 * 0.2),
     (0, 0, 0, 0), 0),
    ("diameter 3.5 is not small", dict(vessel_diameter_at_max_calcium_mm=3.5), (0, 0, 0, 0), 0),
    ("diameter 3.49 is small", dict(vessel_diameter_at_max_calcium_mm=3.49), (0, 0, 0, 1), 1),
    ("arc 359 is not circumferential", dict(max_superficial_calcium_arc_deg=359.0),
     (0, 0, 0, 0), 0),
    ("arc 359.9 is not circumferential", dict(max_superficial_calcium_arc_deg=359.9),
     (0, 0, 0, 0), 0),
    ("arc 360 is circumferential even without the flag",
     dict(max_superficial_calcium_arc_deg=360.0), (0, 1, 0, 0), 1),
    ("nodule", dict(calcified_nodule=True), (0, 0, 1, 0), 1),
    ("all four", dict(max_superficial_calcium_arc_deg=360.0,
                      circumferential_superficial_calcium=True,
                      length_superficial_calcium_over_270_mm=12.0, calcified_nodule=True,
                      vessel_diameter_at_max_calcium_mm=2.9), (1, 1, 1, 1), 4),
]


@pytest.mark.parametrize(("desc", "overrides", "expected", "total"), CASES,
                         ids=[c[0] for c in CASES])
def test_ivus_score_table(desc: str, overrides: dict[str, Any],
                          expected: tuple[int, int, int, int], total: int) -> None:
    score = ivus_calcium_score(lesion(**overrides))
    assert tuple(points(score).values()) == expected, desc
    assert score.total == total
    assert score.minimum_total == score.maximum_total == total
    assert score.calcium_modification_recommended is (total >= 2)
    assert ("recommended" in score.recommendation) is (total >= 2)


@pytest.mark.parametrize(("arc", "outside"), [(270.0, True), (270.5, False), (200.0, True),
                                              (360.0, False)])
def test_derivation_population_edge(arc: float, outside: bool) -> None:
    score = ivus_calcium_score(lesion(max_superficial_calcium_arc_deg=arc))
    assert score.outside_derivation_population is outside
    assert any("outside the population" in s for s in score.statements) is outside


def test_component_values_and_thresholds_are_carried() -> None:
    score = ivus_calcium_score(lesion(length_superficial_calcium_over_270_mm=6.25,
                                      vessel_diameter_at_max_calcium_mm=3.1))
    long = score.component(scoring.LONG_CALCIUM)
    assert long.value == 6.25 and long.unit == "mm" and "> 5 mm" in long.threshold
    small = score.component(scoring.SMALL_VESSEL)
    assert small.value == 3.1 and small.threshold == "< 3.5 mm" and small.points == 1
    assert score.component(scoring.NODULE).value is False
    with pytest.raises(KeyError):
        score.component("nonsense")


def test_not_assessable_components_bracket_the_total() -> None:
    # No spacing at all, lesion > 270 degrees: two components unknown.
    s = ivus_calcium_score(lesion(length_superficial_calcium_over_270_mm=None,
                                  vessel_diameter_at_max_calcium_mm=None))
    assert s.total is None and not s.assessable
    assert (s.minimum_total, s.maximum_total) == (0, 2)
    assert s.calcium_modification_recommended is None
    assert "cannot be determined" in s.recommendation
    assert sum("not assessable" in t for t in s.statements) == 2

    # Nodule + circumferential already make 2: the decision is certain.
    s = ivus_calcium_score(lesion(max_superficial_calcium_arc_deg=360.0, calcified_nodule=True,
                                  length_superficial_calcium_over_270_mm=None,
                                  vessel_diameter_at_max_calcium_mm=None))
    assert s.total is None and s.minimum_total == 2 and s.maximum_total == 4
    assert s.calcium_modification_recommended is True

    # Only the vessel is unknown and nothing else scores: at most 1 -> not recommended.
    s = ivus_calcium_score(lesion(vessel_diameter_at_max_calcium_mm=None))
    assert s.total is None and s.maximum_total == 1
    assert s.calcium_modification_recommended is False


def test_long_component_assessable_without_spacing_when_no_frame_over_270() -> None:
    s = ivus_calcium_score(lesion(max_superficial_calcium_arc_deg=250.0,
                                  length_superficial_calcium_over_270_mm=None,
                                  over_270_start_frame=None, over_270_end_frame=None))
    c = s.component(scoring.LONG_CALCIUM)
    assert c.assessable and c.points == 0 and c.value == 0.0
    assert s.total == 0


def test_highest_total() -> None:
    def sc(**kw: Any) -> scoring.IvusCalciumScore:
        return ivus_calcium_score(lesion(**kw))

    assert highest_total([]) == 0
    assert highest_total([sc(), sc(calcified_nodule=True)]) == 1
    unknown = sc(vessel_diameter_at_max_calcium_mm=None)  # 0..1
    assert highest_total([unknown]) is None
    assert highest_total([unknown, sc(calcified_nodule=True)]) == 1
    assert highest_total([unknown, sc()]) is None


@pytest.mark.parametrize(("angle", "thick", "length", "expected"), [
    (181.0, 0.51, 5.1, 4), (180.0, 0.51, 5.1, 2), (180.5, 0.5, 5.0, 2), (90.0, 0.2, 3.0, 0),
    (360.0, 0.6, 2.0, 3), (100.0, 1.0, 8.0, 2),
])
def test_oct_score(angle: float, thick: float, length: float, expected: int) -> None:
    s = oct_calcium_score(angle, thick, length)
    assert s.total == expected
    assert s.underexpansion_predicted is (expected == 4)
    assert [c.max_points for c in s.components] == [2, 1, 1]


def test_oct_score_not_assessable() -> None:
    s = oct_calcium_score(200.0, None, 6.0)
    assert s.total is None and (s.minimum_total, s.maximum_total) == (3, 4)
    assert s.underexpansion_predicted is None
    s = oct_calcium_score(100.0, None, 6.0)
    assert s.underexpansion_predicted is False


def test_results_are_frozen() -> None:
    s = ivus_calcium_score(lesion())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.total = 3  # type: ignore[misc]


def test_scoring_imports_only_allowed_modules() -> None:
    tree = ast.parse(Path(scoring.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names <= {"__future__", "collections.abc", "dataclasses",
                     "srservice.analysis.types"}, names


def test_private_codes_are_documented() -> None:
    from srservice.reporting import codes as c

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scoring.md").read_text()
    assert c.SCHEME in doc
    for code in c.PRIVATE_CODES:
        assert f"| {code.value} | {code.meaning} |" in doc, code
        assert len(code.meaning) <= 64
