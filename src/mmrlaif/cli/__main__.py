"""``python -m mmrlaif.cli``."""

import sys

from mmrlaif.cli import main

sys.exit(main())
