"""python -m api.probe (see the package's docstring)."""

import sys

from . import main

sys.exit(main())
