"""``python -m piikit``: the same as the ``piikit`` command (``torchrun ... -m piikit sweep`` uses it)."""

import sys

from piikit.interfaces.cli import main

sys.exit(main())
