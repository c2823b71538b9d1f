"""``python -m gateway`` is the ``ivc-gateway`` command."""

from .cli import main

raise SystemExit(main())
