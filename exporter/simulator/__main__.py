"""``python -m exporter.simulator``: the simulator on its own, for trying the exporter by hand."""

import sys

from .cli import main

sys.exit(main())
