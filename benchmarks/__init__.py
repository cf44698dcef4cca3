"""The course's benchmarks: one module per chapter, each with ``run(quick=False) -> list[dict]``.

Run on a GPU machine from the repository root::

    python -m benchmarks 01 02 03 04    # writes results/ch01_*.json ... results/ch04_*.json

Notebooks import the same functions to measure afresh (``quick=True``) when a GPU is present, and read
the recorded JSON otherwise.
"""
