"""The Celery app of the worker processes, configured from :class:`srservice.config.Settings`.

The configuration (broker, serializer, acknowledgement, time limits) is
:func:`srservice.jobs.dispatch.celery_config`; no broker URL is written in code.

``srservice worker`` runs ``celery -A workers.app worker``: the module-level :data:`app` loads
the settings with :func:`srservice.config.load_settings` when Celery first reads its
configuration (worker start), never at import time. :func:`create_app` builds an app for
given settings (tests, embedded use).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from srservice.config import Settings, configure_logging
from srservice.jobs.dispatch import celery_config
from workers import tasks


def create_app(settings: Settings) -> Celery:
    """Build a Celery app configured from ``settings`` with the srservice tasks registered.

    The task bodies of this process then use ``settings`` (:func:`workers.tasks.configure`).
    """
    tasks.configure(settings)
    celery = Celery("srservice", set_as_current=False)
    celery.conf.update(celery_config(settings))
    tasks.register(celery)
    return celery


def _configure_from_environment(sender: Celery, **_: Any) -> None:
    sender.conf.update(celery_config(tasks.current_settings()))


def _setup_logging(**_: Any) -> None:
    """Log as ``srservice`` does (Celery skips its own logging setup when this is connected)."""
    configure_logging(tasks.current_settings().log_level)


setup_logging.connect(_setup_logging)


#: App for ``celery -A workers.app worker``: configured lazily from the environment.
app = Celery("srservice", set_as_current=False)
app.on_configure.connect(_configure_from_environment)
tasks.register(app)
