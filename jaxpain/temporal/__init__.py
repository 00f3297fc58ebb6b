"""PainDiffusion in JAX, in AU space: pain-expression sequences from code.

A diffusion-forcing model (reference.md §G) that streams facial action unit
intensities AU(t) at 25 fps in response to a per-frame pain stimulus, a
subject's expressiveness and an emotion, trained on the procedural
simulator of `synth.sequences` (§G.6). Modules, in the order data flows:

  data      simulator recordings on disk -> grain windows, normalisation
  edm       EDM preconditioning, noise levels, the per-token loss
  model     the AdaLN transformer over tokens (Flax NNX)
  schedule  the pyramid schedule as a constant matrix
  sampler   chunked, jitted streaming with leave-one-out guidance
  train     the trainer (mesh, grain, Orbax resume)
  metrics   PainDist ... PainAcc, jerk (AU space, no detector)
  baselines nearest-neighbour, random window, mean face
  evaluate  held-out evaluation, report and plots
  cli / job the `python -m jaxpain.temporal` commands, the end-to-end job
  torch_checkpoint / released  the authors' FLAME-space U-Net, read from
            their checkpoint without executing it (docs/temporal.md)
"""
