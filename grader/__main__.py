"""``python -m grader NOTEBOOK [NOTEBOOK ...] [--json]``: see ``grader.runner``."""
import sys

from .runner import main

sys.exit(main())
