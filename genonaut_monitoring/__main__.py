"""``python -m genonaut_monitoring``: the ``genonaut-monitoring`` command."""

import sys

from genonaut_monitoring.cli import main

sys.exit(main())
