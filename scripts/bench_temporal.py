"""Speed of the temporal sampler (real-time factor, concurrent streams) and
the 10-minute drift check of a trained model.

  python scripts/bench_temporal.py --out runs/bench_temporal \
      [--workdir runs/temporal_job/seed0/df --minutes 10]

The logic and the options live in jaxpain/bench/temporal.py.
"""

from jaxpain.bench import temporal

if __name__ == "__main__":
  temporal.main()
