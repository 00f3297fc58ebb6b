"""synth: regenerates the 3DPain synthetic pain-face dataset from code."""
