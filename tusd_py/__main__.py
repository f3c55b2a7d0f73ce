"""``python -m tusd_py`` is the ``tusd-py`` command."""

import sys

from tusd_py.cli import main

sys.exit(main())
