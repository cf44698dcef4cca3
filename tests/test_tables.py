"""README.md's headline table is what the records give (``python -m benchmarks.tables --write``)."""
from benchmarks import tables


def test_readme_table_matches_the_records():
    assert tables.readme_table() == tables.table(), (
        "README.md's headline table differs from the records: run `python -m benchmarks.tables --write`")


def test_table_has_a_column_per_gpu_and_a_row_per_kernel():
    t = tables.table()
    assert "H200 / H100" in t
    assert all(label in t for label, _, _ in tables.ROWS)
