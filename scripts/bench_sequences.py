"""Speed of the pain-sequence simulator and clip rendering.

  .venv/bin/python scripts/bench_sequences.py --out bench_sequences.json

The logic and the options live in synth/sequences/bench.py.
"""

from synth.sequences import bench

if __name__ == "__main__":
  bench.main()
