"""`python -m jaxpain.temporal ...`: see jaxpain.temporal.cli."""

import sys

from jaxpain.temporal import cli

if __name__ == "__main__":
  sys.exit(cli.main())
