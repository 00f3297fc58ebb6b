"""`3dpain/sequences`: rendered pain clips with exact per-frame labels.

Each example is one clip of a simulated subject (synth.sequences): `clip_s`
seconds at 25 fps from one view, with the per-frame AU intensities
(synth.sequences.SEQ_AUS), PSPI and stimulus, the subject's conditioning
scalars (expressiveness, emotion) and its neutral face from the same view.
Subjects are split 70/20/10 with the identity hash of the image configs
(subject i renders as identity i), so with the same seed a subject's face
is in the same split in every config.

The work unit is one subject (`subject_examples`); its frames are rendered
in a process without TensorFlow, exactly like the image configs
(synthetic.py). Read with

  src = tfds.data_source('3dpain/sequences', split='train')
  ex = src[0]; frames = np.stack(ex['frames'])  # (T, H, W, 3) uint8

(`tfds.data_source` decodes a Video feature to a list of frames; tf.data
via `tfds.load` gives one (T, H, W, 3) tensor.)
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow_datasets as tfds

from synth.sequences import aus, clipset, programmes
from tfds_3dpain import configs, features, splits, synthetic


def make_sequences_config(name: str, *, description: str | None = None,
                          num_workers: int | None = None, **clip_fields
                          ) -> configs.ThreeDPainConfig:
  """A clips config; `clip_fields` are synth.sequences.ClipSetConfig fields.

  Example: make_sequences_config('seq32', num_subjects=50, resolution=32).
  """
  spec = clipset.ClipSetConfig(**clip_fields)
  if description is None:
    description = (
        f"{spec.num_subjects} subjects x {spec.clips_per_subject} clips of "
        f"{spec.clip_s:g} s at {spec.resolution}x{spec.resolution}")
  return configs.ThreeDPainConfig(name=name, description=description,
                                  sequences=spec, num_workers=num_workers)


def clip_features(spec: clipset.ClipSetConfig) -> tfds.features.FeaturesDict:
  """The feature spec of a clips config."""
  t, side = spec.clip_frames, spec.resolution
  per_frame = lambda doc, dtype=np.float32: tfds.features.Tensor(
      shape=(t,), dtype=dtype, doc=doc)
  scalar = lambda dtype, doc: tfds.features.Scalar(dtype=dtype, doc=doc)
  return tfds.features.FeaturesDict({
      "frames": tfds.features.Video(
          shape=(t, side, side, 3), encoding_format="jpeg",
          doc=f"The clip, {aus.FPS} fps, one JPEG per frame."),
      "neutral_image": tfds.features.Image(
          shape=(side, side, 3), encoding_format="jpeg",
          doc="The subject's neutral face from the clip's view."),
      "au": tfds.features.Tensor(
          shape=(t, aus.NUM_AUS), dtype=np.float32,
          doc="Per-frame AU intensities in the order "
          + ", ".join(aus.SEQ_AUS)
          + " (continuous 0-5; AU43 eyes closed 0 or 1)."),
      "pspi": per_frame("Per-frame PSPI = AU4 + max(AU6, AU7) + "
                        "max(AU9, AU10) + AU43, in [0, 16]."),
      "stimulus": per_frame("Per-frame stimulus on the normalised drive "
                            "axis, 0 (baseline) to 1 (programme maximum)."),
      "stimulus_values": per_frame("Per-frame stimulus in the programme's "
                                   "unit (metadata stimulus_unit)."),
      "level": per_frame("BioVid level 1-4 during plateaus, else 0.",
                         np.int32),
      "expressiveness": scalar(np.float32, "The subject's expressiveness "
                               "trait: PSPI without AU43 at a full "
                               "response (0-15)."),
      "emotion": tfds.features.ClassLabel(
          names=list(aus.EMOTIONS), doc="The subject's emotion."),
      "subject": scalar(np.int32, "Subject index (= rendering identity)."),
      "clip": scalar(np.int32, "Clip index within the subject."),
      "start_frame": scalar(np.int32, "First frame in the subject's "
                            "simulation."),
      "view": scalar(np.int32, "Camera index into metadata views."),
      "yaw": scalar(np.float32, "Camera yaw in degrees."),
      "pitch": scalar(np.float32, "Camera pitch in degrees."),
      "key": tfds.features.Text(doc="Stable key subj#####_clip##."),
  })


def dataset_info(builder: tfds.core.GeneratorBasedBuilder,
                 spec: clipset.ClipSetConfig) -> tfds.core.DatasetInfo:
  """The builder's DatasetInfo for a clips config."""
  return builder.dataset_info_from_configs(
      features=clip_features(spec),
      supervised_keys=("frames", "pspi"),
      homepage="https://arxiv.org/abs/2409.11635",
      metadata=tfds.core.MetadataDict(
          au_names=list(aus.SEQ_AUS), emotions=list(aus.EMOTIONS),
          fps=aus.FPS, clip_config=spec.to_dict(),
          stimulus_unit=programmes.PROGRAMME_UNITS[spec.programme],
          split_salt=configs.SPLIT_SALT),
  )


def split_units(spec: clipset.ClipSetConfig):
  """(work function, {split: subject ids}) for the builder."""
  by_split = splits.assign(list(range(spec.num_subjects)),
                           configs.SPLIT_SALT)
  return functools.partial(subject_examples, spec), by_split


def subject_examples(spec: clipset.ClipSetConfig, subject_id: int
                     ) -> tuple[list[tuple[str, dict]], list]:
  """Renders and encodes one subject's clips (in a rendering process)."""
  return synthetic.run_rendering(_subject_examples_here, spec, subject_id)


def _subject_examples_here(spec, subject_id):
  from synth.sequences import clips  # GL stack: loaded where it renders.

  out = [_example(spec, c) for c in clips.render_subject_clips(spec,
                                                               subject_id)]
  return out, []


def _example(spec, clip: clipset.Clip) -> tuple[str, dict]:
  q = spec.jpeg_quality
  return clip.key, {
      "frames": [features.encode_jpeg(f, q) for f in clip.frames],
      "neutral_image": features.encode_jpeg(clip.neutral, q),
      "au": clip.au,
      "pspi": clip.pspi,
      "stimulus": clip.stimulus,
      "stimulus_values": clip.stimulus_values,
      "level": clip.level.astype(np.int32),
      "expressiveness": np.float32(clip.expressiveness),
      "emotion": clip.emotion,
      "subject": clip.subject_id,
      "clip": clip.clip,
      "start_frame": clip.start_frame,
      "view": clip.view,
      "yaw": np.float32(clip.yaw_deg),
      "pitch": np.float32(clip.pitch_deg),
      "key": clip.key,
  }
