"""``python -m devformance_nb.cli``: the ``devformance`` command."""

from __future__ import annotations

import sys

from devformance_nb.cli.main import main

sys.exit(main())
