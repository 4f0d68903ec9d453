"""Reports for PACS, built without any network: a TID 1500 SR, a one-page PDF and a summary.

:func:`srservice.reporting.outputs.produce_outputs` builds all three from a loaded, analysed
pullback (:mod:`~srservice.reporting.sr`, :mod:`~srservice.reporting.pdf` with
:mod:`~srservice.reporting.plots` and :mod:`~srservice.reporting.overlay`,
:mod:`~srservice.reporting.summary`); :func:`srservice.reporting.outputs.write_outputs` writes
them. Codes are in :mod:`~srservice.reporting.codes`, output UIDs in
:mod:`~srservice.reporting.uids`.
"""
