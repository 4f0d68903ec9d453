"""Pure IVUS image analysis: numpy/scipy/scikit-image only, no I/O, no DICOM objects.

Entry point: :func:`srservice.analysis.pipeline.analyze_pullback`; thresholds in
:class:`srservice.analysis.params.AnalysisParameters`. Submodules are imported lazily so that
``import srservice.analysis.types`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from srservice.analysis.params import ALGORITHM_VERSION, AnalysisParameters
    from srservice.analysis.pipeline import analyze_pullback

__all__ = ["ALGORITHM_VERSION", "AnalysisParameters", "analyze_pullback"]


def __getattr__(name: str) -> Any:
    """Lazy access to the public API (PEP 562)."""
    if name == "analyze_pullback":
        from srservice.analysis.pipeline import analyze_pullback

        return analyze_pullback
    if name in {"AnalysisParameters", "ALGORITHM_VERSION"}:
        from srservice.analysis import params

        return getattr(params, name)
    raise AttributeError(f"module 'srservice.analysis' has no attribute {name!r}")
