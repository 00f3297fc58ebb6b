"""UNBC-McMaster: its readers, folds and the `unbc_mcmaster` TFDS builder.

  table          the frame table every reader returns (`UnbcData`)
  unbc           `load(root)` for either layout; the released HDF5 files
  unbc_archive   the original Images/ + Frame_Labels/ folder tree
  folds          subject-disjoint cross-validation folds, as data
  fabricate      UNBC-shaped fabricated data for tests and demos
  unbc_mcmaster_dataset_builder   the TFDS builder (manual download)

These are the dataset layer: `jaxpain.eval` imports them, never the reverse.
"""

from tfds_3dpain.unbc_mcmaster.unbc_mcmaster_dataset_builder import Builder

__all__ = ["Builder"]
