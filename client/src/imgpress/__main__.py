"""`python -m imgpress`: the same command line as the `imgpress` console script."""

import sys

from imgpress.cli import main

sys.exit(main())
