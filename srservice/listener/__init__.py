"""The DICOM listener: from an association to an instance durably in the spool.

Association checks and handlers (:mod:`~srservice.listener.scp`), bounded PDU reads
(:mod:`~srservice.listener.pduguard`), chunked receive (:mod:`~srservice.listener.receive`),
header and UID checks (:mod:`~srservice.listener.checks`), the durable spool
(:mod:`~srservice.listener.spool`) and the audit trail (:mod:`~srservice.listener.audit`).

It knows nothing of jobs: :func:`srservice.listener.scp.start_scp` calls an ``on_stored``
callback with each :class:`~srservice.listener.spool.StoredInstance` after it is durable and
before Success is answered; ``srservice serve`` passes the job intake's callback.
"""
