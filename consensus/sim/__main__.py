"""``python -m consensus.sim`` (see ``consensus.sim.cli``)."""

import sys

from consensus.sim.cli import main

sys.exit(main())
