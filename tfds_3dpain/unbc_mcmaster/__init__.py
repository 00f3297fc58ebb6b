"""The `unbc_mcmaster` TFDS builder (manual download of the licensed archive)."""

from tfds_3dpain.unbc_mcmaster.unbc_mcmaster_dataset_builder import Builder

__all__ = ["Builder"]
