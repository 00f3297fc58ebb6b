"""Bad input on a command line: one line, exit status 2, no traceback.

Every command of the project (`python -m synth`, `python -m jaxpain.train`,
`python -m jaxpain.eval`, the main job, the benchmark scripts, and the
builder's errors under `tfds build`) refuses input it cannot use the same
way: ONE line on stderr, `PROG: error: WHAT IS WRONG; WHAT TO DO`, exit
status 2, nothing half-written; `--verbose` adds the traceback. The module
lives in synth, the lowest layer, so that every layer can share it
(synth -> tfds_3dpain -> jaxpain; tests/layers_test.py).

What counts as bad input: a `UserError` (the project's errors that a user
can fix derive from it: configs, manual folders, damaged datasets,
checkpoints), an `OSError` (a file that is missing or cannot be written),
and the extra types a command names. Anything else is a bug and keeps its
traceback.

`UserError` is also an absl `UsageError`, so that `tfds build` (an absl app
we do not own) prints our message under its one-line usage header instead
of a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Callable

from absl import app as absl_app

EXIT_BAD_INPUT = 2


class UserError(ValueError, absl_app.UsageError):
  """Bad input the user can fix; the message names it and what to do."""

  exitcode = EXIT_BAD_INPUT  # absl's UsageError.__init__ is not run


def one_line(error: BaseException) -> str:
  """The error's message on one line (whitespace runs become one space)."""
  args = error.args if isinstance(error, BaseException) else ()
  if len(args) > 1 and all(isinstance(a, str) for a in args):
    text = ": ".join(args)
  else:
    text = " ".join(str(error).split())
  if isinstance(error, OSError) and error.strerror:
    where = f": {error.filename}" if error.filename else ""
    text = f"{error.strerror}{where}"
  return text or type(error).__name__


def wants_verbose(argv: list[str] | None = None) -> bool:
  """Whether `--verbose` is among the arguments (before any parsing)."""
  return "--verbose" in (sys.argv[1:] if argv is None else argv)


def report(prog: str, error: BaseException, *, verbose: bool) -> int:
  """Prints the one-line error (and, if verbose, the traceback first)."""
  if verbose:
    traceback.print_exception(error)
  print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
  return EXIT_BAD_INPUT


def run(prog: str, main: Callable[[], int | None], *, verbose: bool = False,
        extra: tuple[type[BaseException], ...] = ()) -> int:
  """Runs `main()`; bad input becomes one line on stderr and status 2.

  Args:
    prog: the command's name as the user typed it, e.g. `python -m synth`.
    main: the command's body; returns its exit status (None means 0).
    verbose: also print the traceback of a bad-input error.
    extra: more exception types that mean bad input for this command.

  Returns:
    main's exit status, or EXIT_BAD_INPUT.
  """
  try:
    return main() or 0
  except (UserError, OSError, *extra) as e:
    return report(prog, e, verbose=verbose)


class ArgumentParser(argparse.ArgumentParser):
  """argparse with `--verbose` and a one-line error (no usage block)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.add_argument("--verbose", action="store_true",
                      help="print the traceback of an error as well")

  def error(self, message: str):
    print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(
          f"expected {what}, got {text!r}") from None
    if value < low:
      raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value

  return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "an integer >= 0")


def check_output_dir(path: str, flag: str,
                     error: type[UserError] = UserError) -> None:
  """Raises `error` unless `path` is, or can become, a writable folder.

  Probes the folder itself, or its nearest existing parent, by creating and
  removing a temporary folder there: permission bits alone say nothing when
  running as root, nor on a read-only mount. Creates nothing that stays.

  Args:
    path: the output folder a command will write.
    flag: the option that named it, for the message (e.g. `--out`).
    error: the UserError subclass to raise.
  """
  full = os.path.abspath(path)
  probe = full
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise error(f"{flag} {path} is not writable: {probe} is a file, not a "
                f"folder; choose another {flag}")
  try:
    tempfile.TemporaryDirectory(dir=probe).cleanup()
  except OSError as e:
    raise error(f"{flag} {path} is not writable ({e.strerror} in {probe}); "
                f"choose another {flag} or fix its permissions") from None
