"""Backfill: score the IVUS studies already archived in a PACS (``srservice backfill``).

- :mod:`~srservice.backfill.throttle`: the time window and the retrieve rate.
- :mod:`~srservice.backfill.finder`: the PACS queries (studies, their series and instances)
  and what each study needs.
- :mod:`~srservice.backfill.retrieve`: C-MOVE to our own AE title, or C-GET into the spool,
  so the instances flow through the normal pipeline (listener or spool -> job -> worker).
- :mod:`~srservice.backfill.run`: one run, resumable from the job store, and its report.
- :mod:`~srservice.backfill.progress`: the progress line with its ETA.

Progress is kept in the job store (:mod:`srservice.jobs.backfills`); docs/backfill.md is the
guide for PACS administrators.
"""
