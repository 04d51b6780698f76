"""``python -m agentkit``: the ``agentkit`` command (``agentkit.faces.cli``)."""

import sys

from agentkit.faces.cli import main

sys.exit(main())
