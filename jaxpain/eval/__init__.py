"""jaxpain.eval: pain metrics, the UNBC-McMaster protocol and reports.

Submodules load lazily: `metrics`, `folds` and the readers need only numpy,
SciPy and h5py, while the runner and the evaluate command pull in JAX and
the trainer.
"""
