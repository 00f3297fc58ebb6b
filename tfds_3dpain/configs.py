"""Builder configs of `3dpain`: which identities, at what size, from where.

Each config is a `ThreeDPainConfig` carrying a full `synth.SynthConfig`
(resolution, views, head / texture / background backends, seed, ...), so
every variant that changes bytes on disk is a named config, as TFDS expects.
`official` carries no SynthConfig: it imports the released 3D-Pain files from
the manual download folder instead of generating anything.

Custom variants need no code change:

  cfg = tfds_3dpain.make_config('my256', num_identities=500, resolution=224,
                                texture='diffusers', diffusion_weights='/w')
  tfds.data_source('3dpain', builder_kwargs={'config': cfg}, ...)
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from synth import config as synth_config
from synth.sequences import clipset
from tfds_3dpain import features

SynthConfig = synth_config.SynthConfig
ImageStorage = features.ImageStorage

# Salt of the identity-to-split hash (tfds_3dpain/splits.py). Changing it
# reshuffles the splits, which requires a new dataset VERSION.
SPLIT_SALT = "3dpain-splits-v1"
# Name of the released split file (reference.md §A.6).
OFFICIAL_SPLIT_CSV = "uniform_data_70_20_10_split.csv"


@dataclasses.dataclass(eq=False)
class ThreeDPainConfig(tfds.core.BuilderConfig):
  """A `3dpain` variant.

  Attributes:
    synth: the generator settings (None for the `official` import). The
      number of identities, resolution, views and backends live here.
    official: import the released 3D-Pain from the manual folder instead of
      generating.
    sequences: rendered pain clips instead of images (the `sequences`
      configs; tfds_3dpain/sequences.py).
    split_csv: file name of the released split CSV searched for in the
      manual folder (`official` only); without it, identities are split
      70/20/10 by hash like the synthetic configs.
    num_workers: worker processes; None uses every local core. Synthetic
      configs always render in worker processes (at least one); `official`
      with 0 or 1 reads in-process. Never changes the bytes written
      (generation is deterministic per (seed, identity)).
    storage: how images are stored: side (e.g. the training resolution),
      JPEG or raw uint8, shard compression (`features.ImageStorage`; the
      default keeps JPEG at the rendered or released size).
  """

  synth: SynthConfig | None = None
  official: bool = False
  sequences: clipset.ClipSetConfig | None = None
  split_csv: str = OFFICIAL_SPLIT_CSV
  num_workers: int | None = None
  storage: ImageStorage = dataclasses.field(default_factory=ImageStorage)

  def __post_init__(self):
    sources = (self.synth is not None, self.official,
               self.sequences is not None)
    if sum(sources) != 1:
      raise ValueError(
          f"3dpain config {self.name!r}: give a SynthConfig (synthetic), "
          "official=True (import of the released data) or a ClipSetConfig "
          "(sequences), exactly one of them"
      )
    if self.sequences is not None and self.sequences.num_subjects < 3:
      raise ValueError(
          f"3dpain config {self.name!r} has {self.sequences.num_subjects} "
          "subjects; the 70/20/10 split needs at least 3"
      )
    if self.synth is not None and self.synth.num_identities < 3:
      raise ValueError(
          f"3dpain config {self.name!r} has {self.synth.num_identities} "
          "identities; the 70/20/10 identity split needs at least 3 so that "
          "train, validation and test each get one"
      )
    if self.num_workers is not None and self.num_workers < 0:
      raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


def make_config(
    name: str,
    *,
    description: str | None = None,
    num_workers: int | None = None,
    storage: ImageStorage | None = None,
    **synth_fields,
) -> ThreeDPainConfig:
  """A synthetic config; `synth_fields` are SynthConfig fields.

  Args:
    name: config name (letters, digits, `_`, `-`, `.`).
    description: one line for the catalog; a default names the size.
    num_workers: see ThreeDPainConfig.
    storage: see ThreeDPainConfig (e.g. `ImageStorage(size=224,
      layout='raw')`: rendered at `resolution`, stored at 224 as raw uint8).
    **synth_fields: e.g. num_identities=500, resolution=224, texture=...

  Returns:
    The config, validated by SynthConfig and ThreeDPainConfig.
  """
  spec = SynthConfig(**synth_fields)
  if description is None:
    description = (
        f"{spec.num_identities} synthetic identities at "
        f"{spec.resolution}x{spec.resolution}"
    )
  return ThreeDPainConfig(
      name=name, description=description, synth=spec, num_workers=num_workers,
      storage=storage or ImageStorage(),
  )


BUILDER_CONFIGS = [
    make_config(
        "full",
        num_identities=2500,
        resolution=256,
        description=(
            "2,500 synthetic identities at 256x256, the paper's composition "
            "(82,500 images)"
        ),
    ),
    make_config(
        "small",
        num_identities=100,
        resolution=256,
        description="100 synthetic identities at 256x256 (3,300 images)",
    ),
    make_config(
        "tiny",
        num_identities=3,
        resolution=48,
        texture_size=64,
        description="3 identities at 48x48, for tests and demos (99 images)",
    ),
    make_config(
        "demo",
        num_identities=36,
        resolution=64,
        texture_size=256,
        description=(
            "36 identities (2 per demographic cell) at 64x64, the main "
            "job's dataset (1,188 images)"
        ),
    ),
    ThreeDPainConfig(
        name="official",
        official=True,
        description=(
            "Import of the released 3D-Pain files from the manual download "
            "folder"
        ),
    ),
    ThreeDPainConfig(
        name="sequences",
        sequences=clipset.ClipSetConfig(num_subjects=300),
        description=(
            "Pain clips: 300 simulated subjects x 4 clips of 3 s at 25 fps, "
            "64x64, one view each, per-frame AUs, PSPI and stimulus "
            "(1,200 clips)"
        ),
    ),
]
