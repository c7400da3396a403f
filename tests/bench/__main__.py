"""``python -m tests.bench [SUITE ...] [--quick] [--no-record]`` (``make bench BENCH="api batch"``).

See ``tests/bench/runner.py`` for the suites and options, docs/benchmarks.md for what each measures.
"""

import sys

from tests.bench.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
