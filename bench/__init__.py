"""Benchmarks that print figures beside their targets (never timing assertions in tests). Each script runs
from the repository root as ``python -m bench.<name>``; ``make bench`` runs them all.

Support code is shared in one direction only: the benchmarks may import the tests' support modules
(``tests.support``, ``tests.pulumi_mocks``); no test imports ``bench``. The tests of the capacity model live
here, beside it (``bench/test_capacity.py``)."""
