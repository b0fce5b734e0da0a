"""`python -m tftriplet_cli`: the `tftriplet` command."""

import sys

from tftriplet_cli import main

sys.exit(main())
