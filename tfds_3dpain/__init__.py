"""tfds_3dpain: the `3dpain` TFDS dataset builder (ArrayRecord + TFRecord).

`import tfds_3dpain` makes TFDS accept the digit-leading name (naming_patch,
applied first, because lookups parse the name before they consult the
registry) and registers the builder, after which

  tfds.data_source('3dpain/tiny', data_dir=...)   # random access, no TF
  tfds.load('3dpain/tiny', split='train', ...)    # tf.data, needs TF

work. Installed projects need not even import us: the `.pth` hook in
`_autoload.py` imports this package whenever `tensorflow_datasets` is.
"""

from tfds_3dpain import naming_patch

naming_patch.apply()

from tfds_3dpain import unbc_mcmaster  # noqa: E402,F401  (registers `unbc_mcmaster`)
from tfds_3dpain.configs import ThreeDPainConfig, make_config  # noqa: E402
from tfds_3dpain.formats import DamagedBuildError  # noqa: E402
from tfds_3dpain.index import RecordIndex, neutral_index  # noqa: E402
from tfds_3dpain.official_layout import ManualDirError  # noqa: E402
from tfds_3dpain.tfds_3dpain_dataset_builder import Builder  # noqa: E402

__all__ = [
    "Builder",
    "DamagedBuildError",
    "ManualDirError",
    "RecordIndex",
    "ThreeDPainConfig",
    "make_config",
    "neutral_index",
]
