"""Running a graph over many inputs (local process pool or Ray). Being written."""
