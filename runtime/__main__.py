"""``python -m cellbox.runtime`` is the ``cellbox`` command."""

import sys

from .cli import main

sys.exit(main())
