"""``python -m sspcmr`` runs the command-line interface (:func:`sspcmr.commands.main.main`)."""

import sys

from sspcmr.commands.main import main

if __name__ == "__main__":
    sys.exit(main())
