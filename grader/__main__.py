"""``python -m grader NOTEBOOK [NOTEBOOK ...] [--json]``: see ``grader.runner``.

Exit status: 0 every exercise has full marks, 3 some exercise does not, 1 a Jupyter kernel failed,
2 a bad command line (``grader.runner.main``)."""
import sys

from .runner import main

sys.exit(main())
