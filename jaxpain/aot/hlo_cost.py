"""FLOPs and HBM traffic of a compiled HLO module, loops counted per trip.

XLA's `cost_analysis()` counts a while body once and charges on-chip
(VMEM) traffic as if it were HBM traffic; these readers follow the loop
multiplicities of `hlo.structure` and count only arrays in HBM (memory
space 0), following slices and in-place updates through views and nested
fusions.
"""

from __future__ import annotations

import math
import re

import numpy as np

from jaxpain.aot import hlo
from jaxpain.aot.hlo import Instr, Module, Structure

# Ops that move no data of their own (views, bookkeeping, control).
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast",
         "while", "call", "conditional", "after-all", "partition-id",
         "replica-id", "opt-barrier", "copy-done", "all-gather-done",
         "all-reduce-done", "collective-permute-done", "async-done",
         "async-update", "send-done", "recv-done", "add-dependency"}

def _conv_flops(instr: Instr, table: dict[str, Instr]) -> float:
  """2 x output elements x contraction size of a dot / convolution."""
  out = instr.arrays
  if not out or len(instr.operands) < 2:
    return 0.0
  n_out = math.prod(out[0][1])
  lhs = table.get(instr.operands[0])
  rhs = table.get(instr.operands[1])
  if lhs is None or rhs is None or not lhs.arrays or not rhs.arrays:
    return 0.0
  if instr.opcode == "dot":
    m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", instr.attrs)
    dims = [int(x) for x in m.group(1).split(",") if x] if m else []
    shape = lhs.arrays[0][1]
    return 2.0 * n_out * math.prod(shape[d] for d in dims)
  m = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", instr.attrs)
  if not m:
    return 0.0
  kernel_labels, out_labels = m.group(2), m.group(3)
  kernel, out_shape = rhs.arrays[0][1], out[0][1]
  contraction = kernel[kernel_labels.index("i")]
  window = _window(instr.attrs)
  for d, label in enumerate(kernel_labels):
    if label.isdigit():
      n_out = out_shape[out_labels.index(label)]
      n_in = lhs.arrays[0][1][m.group(1).index(label)]
      contraction *= _valid_taps(kernel[d], n_in, n_out,
                                 window[int(label)] if window else {})
  return 2.0 * math.prod(out_shape) * contraction


def _window(attrs: str) -> list[dict[str, list[int]]] | None:
  """Per-spatial-dim window settings of a convolution."""
  m = re.search(r"window=\{([^}]*)\}", attrs)
  if not m:
    return None
  fields = dict(f.split("=", 1) for f in m.group(1).split())
  n = len(fields.get("size", "").split("x"))
  dims = [{} for _ in range(n)]
  for key, value in fields.items():
    for d, part in enumerate(value.split("x")):
      dims[d][key] = [int(v) for v in part.split("_")]
  return dims


def _valid_taps(k: int, n_in: int, n_out: int, w: dict) -> float:
  """Average number of kernel taps that hit real input, per output.

  Counted per tap (O(k)), not per (output, tap) pair: XLA writes some
  reductions as convolutions whose window spans a whole batch axis
  (65,536 x 65,536 taps would not fit in memory).
  """
  pad_lo = w.get("pad", [0, 0])[0]
  stride = w.get("stride", [1])[0]
  lhs_dil = w.get("lhs_dilate", [1])[0]
  rhs_dil = w.get("rhs_dilate", [1])[0]
  # Output i with tap j reads position i * stride + j * rhs_dil - pad_lo,
  # which must be a real (not dilation-inserted) input element.
  offset = np.arange(k, dtype=np.int64) * rhs_dil - pad_lo
  top = (n_in - 1) * lhs_dil
  lo = np.maximum(0, -(offset // stride))  # ceil(-offset / stride)
  hi = np.minimum(n_out - 1, (top - offset) // stride)
  if lhs_dil == 1:
    return float(np.maximum(hi - lo + 1, 0).sum()) / max(n_out, 1)
  # Dilated input: also i * stride + offset = 0 (mod lhs_dil), which holds
  # for one residue of i modulo m = lhs_dil / g (g = gcd), and only where
  # g divides the offset.
  g = math.gcd(stride, lhs_dil)
  m = lhs_dil // g
  solvable = offset % g == 0
  inverse = pow(stride // g, -1, m) if m > 1 else 0
  first = ((-(offset // g)) * inverse) % m  # the residue of i
  count = (hi - first) // m - (lo - 1 - first) // m
  count = np.where(solvable & (hi >= lo), count, 0)
  return float(count.sum()) / max(n_out, 1)


def flops(module: Module, struct: Structure | None = None) -> float:
  """Matmul/convolution FLOPs per step (elementwise work not counted)."""
  struct = struct or hlo.structure(module)
  total = 0.0
  for _, runs, table in hlo.live(module, struct):
    for instr in table.values():
      if instr.opcode in ("dot", "convolution"):
        total += runs * _conv_flops(instr, table)
  return total


def _fusion_bytes(module: Module, instr: Instr,
                  table: dict[str, Instr]) -> float:
  """Bytes a fusion moves: operands read plus results written.

  As XLA's own model does: an operand used only through (dynamic-)slices
  costs its slices, an in-place dynamic-update-slice costs its update.
  """
  inner = _callee(module, instr)
  by_index = {i.param_index: i.name for i in inner
              if i.opcode == "parameter"}
  inner_table = {i.name: i for i in inner}
  total = 0.0
  for k, name in enumerate(instr.operands):
    full = table[name].hbm_bytes if name in table else 0.0
    if full:
      total += min(full, _read_bytes(module, inner, by_index.get(k), full))
  root = next((i for i in inner if i.is_root), inner[-1] if inner else None)
  outs = [root] if root is not None else []
  if root is not None and root.opcode == "tuple":
    outs = [inner_table.get(n) for n in root.operands]
  elements = instr.elements
  if len(outs) != len(elements):
    return total + instr.hbm_bytes
  for out, (nbytes, in_hbm) in zip(outs, elements, strict=True):
    if in_hbm:
      total += _write_bytes(module, inner_table, out, nbytes)
  return total


def _write_bytes(module: Module, table: dict[str, Instr], out: Instr | None,
                 full: float, depth: int = 0) -> float:
  """Bytes a fused result writes: an in-place dynamic-update-slice writes
  its update only (followed through views and nested fusions)."""
  if out is None or depth > 8:
    return full
  if out.opcode == "dynamic-update-slice" and len(out.operands) > 1:
    upd = table.get(out.operands[1])
    return min(full, upd.nbytes) if upd is not None else full
  if out.opcode in ("bitcast", "reshape", "copy") and out.operands:
    return _write_bytes(module, table, table.get(out.operands[0]), full,
                        depth + 1)
  if out.opcode == "fusion":
    inner = _callee(module, out)
    root = next((i for i in inner if i.is_root), None)
    if root is not None and root.opcode != "tuple":
      return _write_bytes(module, {i.name: i for i in inner}, root, full,
                          depth + 1)
  return full


def _callee(module: Module, instr: Instr) -> list[Instr]:
  m = re.search(r"\bcalls=%([\w.\-]+)", instr.attrs)
  return module.computations.get(m.group(1), []) if m else []


def _read_bytes(module: Module, comp: list[Instr], name: str | None,
                full: float, depth: int = 0) -> float:
  """How much of the array `name` the fused computation reads.

  Slices read their slice; an in-place dynamic-update-slice reads nothing;
  views and nested fusions are followed; anything else reads it all.
  """
  if name is None or depth > 8:
    return full
  users = [i for i in comp if name in i.operands]
  if not users:
    return 0.0
  total = 0.0
  for u in users:
    if u.opcode in ("dynamic-slice", "slice") and u.operands[0] == name:
      total += u.nbytes
    elif u.opcode == "dynamic-update-slice" and u.operands[0] == name:
      continue
    elif u.opcode in ("bitcast", "reshape", "copy"):
      total += _read_bytes(module, comp, u.name, full, depth + 1)
    elif u.opcode == "fusion":
      inner = _callee(module, u)
      params = {i.param_index: i.name for i in inner
                if i.opcode == "parameter"}
      for k, op in enumerate(u.operands):
        if op == name:
          total += _read_bytes(module, inner, params.get(k), full,
                               depth + 1)
    else:
      return full
  return min(total, full)


def bytes_accessed(module: Module, struct: Structure | None = None
                   ) -> float:
  """HBM bytes read + written per step by the top-level instructions."""
  struct = struct or hlo.structure(module)
  total = 0.0
  for comp, runs, table in hlo.live(module, struct):
    if comp in struct.fused:
      continue
    for instr in table.values():
      if instr.opcode in _FREE:
        continue
      if instr.opcode == "fusion":
        moved = _fusion_bytes(module, instr, table)
      else:
        read = sum(table[n].hbm_bytes for n in instr.operands
                   if n in table)
        write = 0.0 if instr.opcode.endswith("-start") else instr.hbm_bytes
        moved = read + write
      total += runs * moved
  return total
