"""`python -m synth`: synthesise a 3DPain-style dataset into a folder.

  python -m synth --num-identities 8 --out out/3dpain \\
      --contact-sheet out/3dpain/contact_sheet.png

Every input is checked before anything is written (configuration, AU
overrides, head data, diffusion weights, output folder and contact sheet
folder); a bad one ends the run with one line naming it on stderr and exit
status 2 (`--verbose` adds the traceback; synth.cli_errors). A rerun into
the same folder resumes: finished identities are kept, not regenerated.
"""

from __future__ import annotations

import argparse
import os
import sys

from synth import cli_errors
from synth import config as config_lib
from synth.config import ConfigError, SynthConfig

# CLI option -> SynthConfig field, for options that map one to one.
_FIELDS = {
  "num_identities": "num_identities",
  "seed": "seed",
  "resolution": "resolution",
  "texture": "texture",
  "background": "background",
  "head": "head",
  "head_path": "head_path",
  "head_blendshapes": "head_blendshapes",
  "head_texture_space": "head_texture_space",
  "diffusion_weights": "diffusion_weights",
  "inpaint_weights": "inpaint_weights",
  "diffusion_steps": "diffusion_steps",
  "diffusion_resolution": "diffusion_resolution",
  "pain_distribution": "pain_distribution",
  "image_format": "image_format",
  "texture_size": "texture_size",
  "au_override": "au_override",
  "msaa_samples": "msaa_samples",
}


PROG = "python -m synth"


def build_parser() -> argparse.ArgumentParser:
  p = cli_errors.ArgumentParser(
    prog=PROG,
    description="Synthesise 3DPain-style pain-expression faces.",
  )
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--num-identities", type=int)
  p.add_argument(
    "--config",
    help="JSON file of SynthConfig fields; "
    "options given on the command line override it",
  )
  p.add_argument("--resolution", type=int)
  p.add_argument("--seed", type=int)
  p.add_argument(
    "--workers",
    type=cli_errors.positive_int,
    default=None,
    help="processes (default: all cores; 1 with diffusers)",
  )
  p.add_argument("--texture", choices=config_lib.TEXTURE_BACKENDS)
  p.add_argument("--texture-size", type=int)
  p.add_argument(
    "--diffusion-weights",
    help="local diffusers pipeline "
    "folder (ControlNet-depth or Depth2Img) for --texture "
    "diffusers",
  )
  p.add_argument("--background", choices=config_lib.BACKGROUND_BACKENDS)
  p.add_argument(
    "--inpaint-weights",
    help="local diffusers inpainting pipeline folder for --background inpaint",
  )
  p.add_argument("--diffusion-steps", type=int)
  p.add_argument("--diffusion-resolution", type=int)
  p.add_argument("--head", choices=config_lib.HEAD_BACKENDS)
  p.add_argument("--head-path", help="MakeHuman data folder or FLAME file")
  p.add_argument(
    "--head-blendshapes",
    help="FLAME: npz of ARKit-named (V, 3) blendshapes in metres",
  )
  p.add_argument(
    "--head-texture-space", help="FLAME: npz with 'vt' and 'ft' (UVs)"
  )
  p.add_argument(
    "--views", help="camera (yaw,pitch) pairs in degrees, e.g. '0,8;-30,5;30,5'"
  )
  p.add_argument("--pain-distribution")
  p.add_argument(
    "--au-override",
    help="AUs forced on every pain expression, e.g. AU4=3,AU43=1",
  )
  p.add_argument("--image-format", choices=config_lib.IMAGE_FORMATS)
  p.add_argument("--msaa-samples", type=int)
  p.add_argument("--contact-sheet", help="write a contact sheet PNG here")
  p.add_argument("--no-progress", action="store_true")
  return p


def _parse_views(text: str) -> tuple[tuple[float, float], ...]:
  try:
    return tuple(
      tuple(float(x) for x in item.split(","))
      for item in text.split(";")
      if item.strip()
    )
  except ValueError:
    raise ConfigError(
      f"--views {text!r} must look like '0,8;-30,5;30,5'"
    ) from None


def config_from_args(args: argparse.Namespace) -> SynthConfig:
  """Merges --config (if any) with the explicit options."""
  data = {}
  if args.config:
    data = SynthConfig.from_json(args.config).to_dict()
  for opt, field in _FIELDS.items():
    value = getattr(args, opt)
    if value is not None:
      data[field] = value
  if args.views is not None:
    data["views"] = _parse_views(args.views)
  if "num_identities" not in data:
    raise ConfigError(
      "--num-identities is required (or a --config file "
      "that sets num_identities)"
    )
  return SynthConfig.from_dict(data)


def _pain_distribution_check(config: SynthConfig) -> None:
  from synth import pain_levels

  if config.pain_distribution not in pain_levels.DISTRIBUTIONS:
    raise ConfigError(
      f"unknown pain distribution {config.pain_distribution!r}; choose "
      f"one of {', '.join(pain_levels.DISTRIBUTIONS)}"
    )


def run(argv: list[str] | None = None) -> int:
  """The CLI; returns the exit status (2 and one line for bad input)."""
  try:
    args = build_parser().parse_args(argv)
  except SystemExit as e:  # --help, or an option argparse cannot parse
    return e.code
  return cli_errors.run(PROG, lambda: _synthesise(args), verbose=args.verbose)


def _synthesise(args: argparse.Namespace) -> int:
  from synth import pipeline, store

  config = config_from_args(args)
  _pain_distribution_check(config)
  pipeline.check_inputs(config)
  store.check_output_dir(args.out)
  if args.contact_sheet:
    cli_errors.check_output_dir(
      os.path.dirname(os.path.abspath(args.contact_sheet)), "--contact-sheet"
    )
  summary = store.write_dataset(
    config, args.out, args.workers, progress=not args.no_progress
  )
  rate = summary.images / summary.seconds if summary.seconds else 0.0
  print(
    f"synth: wrote {len(summary.written)} identities "
    f"({summary.images} images) in {summary.seconds:.1f} s "
    f"({rate:.1f} images/s); {len(summary.skipped)} already finished; "
    f"dataset in {args.out}"
  )
  if args.contact_sheet:
    from synth import contact_sheet

    contact_sheet.write_contact_sheet(args.out, args.contact_sheet)
    print(f"synth: contact sheet {args.contact_sheet}")
  return 0


def main() -> None:
  sys.exit(run())
