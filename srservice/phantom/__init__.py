"""Synthetic IVUS pullbacks with ground truth, and a DICOM writer for them.

See :mod:`srservice.phantom.spec` (what to draw), :mod:`srservice.phantom.truth` (the rules the
truth follows), :mod:`srservice.phantom.suite` (the accuracy suite) and
:mod:`srservice.phantom.writer` (DICOM Ultrasound Multi-frame Image export). The realistic
image model (the look of real console exports, docs/phantom.md) is in
:mod:`srservice.phantom.realistic_suite` (cases, truth JSON, suite),
:mod:`srservice.phantom.realistic_geometry` and :mod:`srservice.phantom.realistic_render`;
:mod:`srservice.phantom.imagestats` measures how a pullback looks.
"""

from srservice.phantom.case import PhantomCase, make_case
from srservice.phantom.spec import CaseSpec, LesionSpec, SegmentFeature
from srservice.phantom.suite import small_case, standard_suite
from srservice.phantom.truth import CaseTruth, ExpectedScore, FrameTruth, expected_score

__all__ = [
    "CaseSpec",
    "CaseTruth",
    "ExpectedScore",
    "FrameTruth",
    "LesionSpec",
    "PhantomCase",
    "SegmentFeature",
    "expected_score",
    "make_case",
    "small_case",
    "standard_suite",
]
