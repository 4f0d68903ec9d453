"""Helpers shared by the tests (not collected by pytest: no ``test_`` modules here).

- :mod:`tests.support.environment`: CI-aware skipping, external tools, free ports, polling.
- :mod:`tests.support.datasets`: small hand-made DICOM datasets (pydicom only).
- :mod:`tests.support.listener`: listener settings, an ``on_stored`` recorder, spool
  inspection, ``python -m srservice.listener.scp`` as a child process.
- :mod:`tests.support.jobs`: stored-instance records, report records, PostgreSQL schemas and a
  recording broker client for the job store tests.
- :mod:`tests.support.reporting`: a hand-made source dataset and analyses for the reports.
- :mod:`tests.support.synthetic_ivus`: synthetic polar IVUS frames for the analysis steps.
- :mod:`tests.support.orthanc`: a real Orthanc as the PACS.
- :mod:`tests.support.service`: the whole service as processes (serve, workers, Redis).
- :mod:`tests.support.reliability`, :mod:`~tests.support.fuzz`, :mod:`~tests.support.hostile`,
  :mod:`~tests.support.workload`, :mod:`~tests.support.figures`,
  :mod:`~tests.support.analysis_runner`: the reliability suite's inputs, senders and figures.
"""
