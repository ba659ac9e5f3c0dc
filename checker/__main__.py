"""`python -m checker`: the command line.

The process ends with `os._exit` once its output is flushed, skipping the interpreter's
teardown: a large exploration leaves millions of objects behind (the model's memo tables),
and freeing them one by one took 8 s after a 23 s run of 3x3. Nothing is left to do by then:
reports are written and closed, worker processes have ended, spill files have no name.
"""

import os
import sys

from checker.cli import main

code = main(prog="python -m checker")
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
    pass
os._exit(code)
