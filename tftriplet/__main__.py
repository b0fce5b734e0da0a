"""`python -m tftriplet`: the `tftriplet` command, kept for those who start it this way.

Python imports the package, and with it Keras and TensorFlow, before this module runs, so
the framework's start-up lines are not dropped here: `tftriplet ...` and
`python -m tftriplet_cli ...` are the quiet forms (tftriplet_cli/__init__.py).
"""

import sys

from tftriplet_cli import main

sys.exit(main())
