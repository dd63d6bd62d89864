"""``python -m edgerules``: the command line."""

from edgerules.cli import main

raise SystemExit(main())
