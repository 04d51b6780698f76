"""``python -m agentkit.faces.cli``: the ``agentkit`` command."""

import sys

from . import main

sys.exit(main())
