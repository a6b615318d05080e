"""``python -m piikit``: the same as the ``piikit`` command (``torchrun ... -m piikit sweep`` uses it)."""

import sys

from .cli import main

sys.exit(main())
