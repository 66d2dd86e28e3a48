"""``python -m softmass_core ...``: see :mod:`softmass_core.cli`."""

import sys

from softmass_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
