"""`python -m synth`: see synth.cli. The guard keeps spawned workers (which
re-import this module as `__mp_main__`) from starting the CLI again."""

from synth.cli import main

if __name__ == "__main__":
  main()
