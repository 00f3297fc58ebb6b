"""tfds_3dpain: the `3dpain` TFDS dataset builder (ArrayRecord + TFRecord)."""

from tfds_3dpain import unbc_mcmaster  # noqa: E402,F401  (registers `unbc_mcmaster`)
