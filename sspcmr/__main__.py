"""``python -m sspcmr`` runs the command-line interface."""

from sspcmr.cli import main

if __name__ == "__main__":
    main()
