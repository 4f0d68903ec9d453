"""Pure IVUS image analysis: numpy/scipy/scikit-image only, no I/O, no DICOM objects.

Entry point: :func:`srservice.analysis.pipeline.analyze_pullback`.
"""
