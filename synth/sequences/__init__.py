"""Pain-expression sequences: a procedural stimulus -> AU simulator.

The data side of the PainDiffusion-style sequence model (reference.md §G.6):
simulated subjects (subject.py) exposed to stimulus programmes (programmes.py)
answer with AU intensities at 25 fps (response.py), cut into training
windows with drift bounds for long rollouts (windowing.py). Pure numpy and
scipy, deterministic per seed and sharded by subject. Rendering AU(t) on the
synth head lives in `synth.sequences.clips` (imported on demand: it loads
the GL stack).

  from synth import sequences as sq
  subject = sq.sample_subject(seed=0, subject_id=7)
  stim = sq.stimulus("biovid", 120.0, seed=0, subject=subject)
  rec = sq.simulate(subject, stim, seed=0)      # rec.au (3000, 13)
  batch = sq.windows(rec, length=64, stride=10)
"""

from synth.sequences.aus import (
    AU_INDEX,
    AU_MAX,
    EMOTIONS,
    FPS,
    NUM_AUS,
    PAIN_CORE,
    SEQ_AUS,
    pspi,
)
from synth.sequences.programmes import (
    PROGRAMMES,
    UNIT_RANGES,
    Stimulus,
    stimulus,
    stimulus_from_array,
    stimulus_from_csv,
)
from synth.sequences.response import (
    SequenceRecord,
    simulate,
    simulate_subject,
    simulate_subjects,
)
from synth.sequences.subject import Subject, sample_subject
from synth.sequences.windowing import (
    MinuteBounds,
    minute_bounds,
    minute_stats,
    transition_starts,
    windows,
)

__all__ = [
    "AU_INDEX", "AU_MAX", "EMOTIONS", "FPS", "NUM_AUS", "PAIN_CORE",
    "PROGRAMMES", "SEQ_AUS", "UNIT_RANGES", "MinuteBounds", "SequenceRecord",
    "Stimulus", "Subject", "minute_bounds", "minute_stats", "pspi",
    "sample_subject", "simulate", "simulate_subject", "simulate_subjects",
    "stimulus", "stimulus_from_array", "stimulus_from_csv",
    "transition_starts", "windows",
]
