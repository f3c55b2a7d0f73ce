"""``python -m tusd_py`` is the ``tusd-py`` command."""

import sys

from tusd_py.cli.main import main

sys.exit(main())
