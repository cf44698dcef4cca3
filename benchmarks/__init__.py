"""The course's benchmarks: one module per chapter (``ch00`` ... ``ch05``).

Each module has ``run_all(quick=False)``: a dict ``name -> (measure, meta)``, where ``measure()``
returns the records of ``results/<gpu>/<name>.json`` and ``meta`` says what they measure;
``python -m benchmarks`` saves each document as soon as its ``measure()`` returns, so a run cut short
keeps what it finished. Run on a GPU machine from the repository root::

    python -m benchmarks 00 01 02 03 04 05    # writes results/<gpu>/ch00_*.json ... ch05_*.json

Notebooks import the same functions to measure afresh (``quick=True``) on a GPU without a record of
its own, and read the recorded JSON otherwise (``kernels.bench.recorded_or_fresh``).
"""
