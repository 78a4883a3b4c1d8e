"""Support code of the tests and benchmarks; none of it ships with the product.

Imported as ``tests.support.<module>`` with the repository root on the import path: pytest
puts it there (``pythonpath`` in setup.cfg), and a benchmark gets it by being run as a module
from the root (``python -m bench.<name>``). Helpers used by one test directory only stay next
to those tests.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: working directory of the processes started here
