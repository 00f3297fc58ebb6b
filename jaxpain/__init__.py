"""jaxpain: ViTPain in Flax NNX, trained on 3DPain, evaluated on UNBC-McMaster."""

__version__ = "0.1.0"
