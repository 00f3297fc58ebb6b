"""jaxpain.eval: pain metrics, the UNBC-McMaster protocol and reports.

The UNBC-McMaster readers and folds are data, so they live on the dataset
side (`tfds_3dpain.unbc_mcmaster`: `unbc`, `unbc_archive`, `folds`,
`fabricate`) and this package imports them. Submodules load lazily:
`metrics` needs only numpy and SciPy, while the runner and the evaluate
command pull in JAX and the trainer.
"""
