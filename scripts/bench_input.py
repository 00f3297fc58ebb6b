"""Host input pipeline throughput per storage layout and stage.

  .venv/bin/python scripts/bench_input.py --data-dir /tmp/bench_input
  .venv/bin/python scripts/bench_input.py --data-dir D --source fixture \
      --sizes 64 --layouts jpeg,raw --batches 3

What is measured: `jaxpain/bench/input.py`; flags and tables:
`jaxpain/bench/input_cli.py`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
  from jaxpain.bench import input_cli

  sys.exit(input_cli.main())
