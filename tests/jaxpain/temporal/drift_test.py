"""A rollout neither drifts nor freezes: per-minute AU mean and variance
stay inside bounds taken from the simulator (synth.sequences).

The test streams one minute of the tiny runlocal model (300 steps);
docs/temporal.md and the benchmark run ten minutes of the real model the
same way.
"""


from jaxpain.temporal import sampler, train
from synth import sequences as sq


def test_one_minute_rollout_stays_within_simulator_bounds(tiny_run):
  net, scfg, _ = train.load_model(tiny_run[0])
  bounds = sq.minute_bounds(seed=0, subject_ids=range(100, 132), minutes=1)
  subject = sq.sample_subject(5, 3)
  stim = sq.stimulus("biovid", 60.0, 5, subject).drive
  au = sampler.rollout(net, scfg, stim[None], [subject.expressiveness],
                       [subject.emotion], seed=1)[0]
  assert au.shape == (1500, sq.NUM_AUS)
  problems = bounds.violations(au)
  assert not problems, "\n".join(problems)
  # Not frozen within the minute either: the last 10 s still move.
  assert au[-250:].std(0).sum() > 0.01
