"""``python -m arprob.cli``: the ``arprob`` command."""

import sys

from . import main

sys.exit(main())
