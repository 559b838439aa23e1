"""python3 tests/integration/harness demo | selftest | exim"""

import os
import sys

if __package__ in (None, ""):
    # Run as a folder: make the package importable by its name.
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from harness.demo import cli
else:
    from .demo import cli

sys.exit(cli(sys.argv))
