"""The input layer's error type, in a module of its own so that every data
module (sources, records, pipeline) can raise it without importing another.
"""


class DataError(ValueError):
  """A dataset that is missing, damaged or lacks what the run needs."""
