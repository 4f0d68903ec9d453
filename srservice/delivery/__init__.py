"""Delivery of the reports to each destination: a PACS, or the local outbox.

One attempt of one delivery is :mod:`~srservice.delivery.attempt`; it sends as DICOM SCU
(:mod:`~srservice.delivery.scu`) or publishes in the outbox (:mod:`~srservice.delivery.outbox`).
Backoff, deadline and the dead letter are states of the delivery rows in the job store
(:mod:`srservice.jobs.deliveries`).
"""
