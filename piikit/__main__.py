"""``python -m piikit``: the same as the ``piikit`` command (``torchrun ... -m piikit sweep`` uses it)."""

import sys

try:  # Ctrl-C this early gets the command's one line too, not a traceback
    from piikit.interfaces.cli import main
except KeyboardInterrupt:
    print("piikit: interrupted before any work was done", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
