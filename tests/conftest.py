import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402  (decides the world before anything imports triton)

print(kernels.describe_world(), file=sys.stderr)


def pytest_report_header(config):
    return kernels.describe_world()
