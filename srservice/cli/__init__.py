"""The ``srservice`` command, one module per command group.

:mod:`~srservice.cli.main` builds the settings once and maps errors to one line and an exit
status; the groups register their sub-commands: :mod:`~srservice.cli.analyze` (``analyze``),
:mod:`~srservice.cli.service` (``serve``, ``worker``), :mod:`~srservice.cli.operate`
(``echo``, ``jobs``, ``retry``) and :mod:`~srservice.cli.demo` (``demo``).
"""
