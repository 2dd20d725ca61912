"""Entry point: `python -m tools.vm`."""

from __future__ import annotations

import sys

from tools.vm.matrix import main

sys.exit(main())
