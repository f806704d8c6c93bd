"""``python -m snnconv`` (and ``torchrun ... -m snnconv``)."""

import os
import sys

# `python -m` puts the current directory first on the import path: a file there named like an
# installed package (matplotlib.py, say) would shadow it for the whole run. The user's own
# MODULE:FACTORY is imported with the current directory on the path (snnconv.importers.load).
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from snnconv.cli import console

console()
