"""The ``srservice`` command: one entry point, sub-commands implemented in their own modules.

Each sub-command module exposes ``add_parser(subparsers)`` which registers its arguments and
sets ``func(args, settings) -> int``. This module only builds the settings once, maps the
project's errors to one clear line and an exit status, and never prints a traceback for an
expected failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from srservice import __version__
from srservice.config import configure_logging, load_settings
from srservice.errors import SrServiceError, reason_for

#: Modules that register sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = ("srservice.cli.analyze", "srservice.cli.service", "srservice.cli.operate",
                   "srservice.cli.backfill", "srservice.cli.demo")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="srservice",
        description="Automatic IVUS calcium scoring (Zhang et al. 2021) for PACS. Settings come "
        "from SRSERVICE_* environment variables; see docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"srservice {__version__}")
    parser.add_argument("--data-dir", help="override SRSERVICE_DATA_DIR")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(data_dir=args.data_dir, log_level=args.log_level)
        configure_logging(settings.log_level)
        status: int = args.func(args, settings)
    except SrServiceError as exc:
        print(f"srservice: error: {reason_for(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
