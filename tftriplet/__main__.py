import sys

from tftriplet.cli import main

sys.exit(main())
