"""``python -m exporter`` runs the same command line as ``whatsgate-exporter``."""

import sys

from .cli import main

sys.exit(main())
