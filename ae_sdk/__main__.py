"""``python -m ae_sdk sign|encrypt|decrypt|token|listen`` (see :mod:`ae_sdk.cli`)."""

import sys

from .cli import main

sys.exit(main())
