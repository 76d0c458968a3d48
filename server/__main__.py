"""``python -m server`` is ``meddav``."""

import sys

from server.cli import main

sys.exit(main())
