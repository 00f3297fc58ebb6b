"""tfds_3dpain: the `3dpain` TFDS dataset builder (ArrayRecord + TFRecord)."""
