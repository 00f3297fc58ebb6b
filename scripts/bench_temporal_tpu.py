"""Concurrent real-time streams of the temporal sampler per TPU chip, from
the program compiled for a TPU topology on this CPU (libtpu; no TPU).

  python scripts/bench_temporal_tpu.py --topology v5e-4 --streams 256,2048,16384

The logic and the options live in jaxpain/bench/temporal_tpu.py.
"""

from jaxpain.bench import temporal_tpu

if __name__ == "__main__":
  temporal_tpu.main()
