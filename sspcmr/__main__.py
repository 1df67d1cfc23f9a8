"""``python -m sspcmr`` runs the command-line interface."""

import sys

from sspcmr.cli import main

if __name__ == "__main__":
    sys.exit(main())
