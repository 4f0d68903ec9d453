"""``python -m srservice.cli``: the ``srservice`` command."""

from srservice.cli.main import main

raise SystemExit(main())
