"""``python -m exporter.simulator``: the simulator on its own, for trying the exporter by hand."""

import sys

from .server import main

sys.exit(main())
