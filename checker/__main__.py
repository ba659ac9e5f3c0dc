"""`python -m checker`: the command line."""

import sys

from checker.cli import main

sys.exit(main(prog="python -m checker"))
