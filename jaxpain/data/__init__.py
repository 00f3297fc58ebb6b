"""Input data: record sources, the grain pipeline, on-device augmentation."""

from jaxpain.data import toy  # noqa: F401  (registers the "toy" source)
from jaxpain.data.augment import AugmentConfig, prepare
from jaxpain.data.pipeline import (
    GlobalBatches,
    InputSpec,
    eval_dataset,
    train_dataset,
)
from jaxpain.data.records import RecordError, TfdsRecords
from jaxpain.data.sources import (
    ArraySource,
    DataError,
    SplitIndex,
    open_source,
    register_source,
    split_index,
)

__all__ = [
    "ArraySource", "AugmentConfig", "DataError", "GlobalBatches", "InputSpec",
    "RecordError", "SplitIndex", "TfdsRecords", "eval_dataset", "open_source",
    "prepare", "register_source", "split_index", "train_dataset",
]
