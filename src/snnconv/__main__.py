"""``python -m snnconv``."""

import sys

from snnconv.cli import main

sys.exit(main())
