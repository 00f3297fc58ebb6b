"""Reading a compiled (optimized) HLO module: loops, collectives, costs.

Why our own reader: `compiled.cost_analysis()` counts a while loop's body
ONCE (measured: a `lax.scan` of 8 matmuls reports the FLOPs of one), and
the trainer scans the backbone blocks, so its FLOPs and bytes would be a
fraction of the real step. Here every computation gets a multiplicity (a
while body runs `known_trip_count` times per call), and the collectives and
costs inside loops are counted that many times.

Collectives are matched by the op name after the result type, so tuple
results, `(f32[2], f32[3]) all-reduce(`, and async forms,
`all-gather-start(`, are found too (`-done` halves are not counted twice).
Replica groups come in three spellings: explicit `{{0,1},{2,3}}`, iota
`[2,2]<=[4]` (optionally `T(1,0)`), and mesh `mesh['axis_0'=4] {'axis_0'}`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator

import numpy as np

DTYPE_BYTES = {
    "pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2,
    "s32": 4, "u32": 4, "s64": 8, "u64": 8, "f16": 2, "bf16": 2, "f32": 4,
    "f64": 8, "c64": 8, "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1,
    "token": 0,
}
COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all",
               "collective-permute")
_ARRAY = re.compile(r"\b([a-z]+[0-9]*(?:e[0-9]m[0-9]fn)?)\[([0-9,]*)\]")
# An array type with its layout; S(n), n > 0, is an on-chip memory space
# (TPU VMEM), which costs no HBM bandwidth.
_LAYOUT = re.compile(
    r"\b([a-z]+[0-9]*(?:e[0-9]m[0-9]fn)?)\[([0-9,]*)\](\{[^{}]*\})?")
_HEADER = re.compile(r"^(ENTRY\s+)?%?(\S+)\s+\(.*\)\s*->\s*.*\{\s*$")
_NAME = re.compile(r"%([\w.\-]+)")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
# Ops that move no data of their own (views, bookkeeping, control).
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast",
         "while", "call", "conditional", "after-all", "partition-id",
         "replica-id", "opt-barrier", "copy-done", "all-gather-done",
         "all-reduce-done", "collective-permute-done", "async-done",
         "async-update", "send-done", "recv-done", "add-dependency"}


@dataclasses.dataclass
class Instr:
  name: str
  type_str: str
  opcode: str
  operands: list[str]
  attrs: str
  is_root: bool = False
  param_index: int | None = None
  args: str = ""

  @property
  def arrays(self) -> list[tuple[str, tuple[int, ...]]]:
    return parse_arrays(self.type_str)

  @property
  def nbytes(self) -> float:
    return sum(array_bytes(d, s) for d, s in self.arrays)

  @property
  def elements(self) -> list[tuple[float, bool]]:
    """(bytes, lives in HBM) of each result array (tuple elements)."""
    out = []
    for dtype, dims, layout in _LAYOUT.findall(self.type_str):
      if dtype not in DTYPE_BYTES:
        continue
      space = re.search(r"S\((\d+)\)", layout or "")
      shape = tuple(int(d) for d in dims.split(",") if d)
      out.append((array_bytes(dtype, shape),
                  not (space and int(space.group(1)))))
    return out

  @property
  def hbm_bytes(self) -> float:
    """Bytes of the result arrays that live in HBM (memory space 0)."""
    return sum(b for b, in_hbm in self.elements if in_hbm)


@dataclasses.dataclass
class Module:
  computations: dict[str, list[Instr]]
  entry: str

  def shapes(self, comp: str) -> dict[str, Instr]:
    return {i.name: i for i in self.computations[comp]}


def parse_arrays(type_str: str) -> list[tuple[str, tuple[int, ...]]]:
  """'(bf16[2,3]{1,0}, f32[])' -> [('bf16', (2, 3)), ('f32', ())]."""
  out = []
  for dtype, dims in _ARRAY.findall(type_str):
    if dtype in DTYPE_BYTES:
      out.append((dtype, tuple(int(d) for d in dims.split(",") if d)))
  return out


def array_bytes(dtype: str, shape: tuple[int, ...]) -> float:
  return DTYPE_BYTES[dtype] * math.prod(shape)


def _balanced(s: str, start: int) -> int:
  """Index just past the bracket group opening at s[start]."""
  pairs = {"(": ")", "{": "}", "[": "]"}
  stack = []
  for i in range(start, len(s)):
    c = s[i]
    if c in pairs:
      stack.append(pairs[c])
    elif stack and c == stack[-1]:
      stack.pop()
      if not stack:
        return i + 1
  return len(s)


def _parse_instr(line: str) -> Instr | None:
  body = line.strip()
  is_root = body.startswith("ROOT ")
  if is_root:
    body = body[5:]
  if not body.startswith("%") or " = " not in body:
    return None
  name, rest = body.split(" = ", 1)
  if rest.startswith("("):
    end = _balanced(rest, 0)
  else:
    end = rest.find(" ")
  type_str, rest = rest[:end], rest[end:].lstrip()
  paren = rest.find("(")
  if paren <= 0:
    return None
  opcode = rest[:paren]
  close = _balanced(rest, paren)
  args = rest[paren + 1:close - 1]
  index = int(args) if opcode == "parameter" and args.isdigit() else None
  return Instr(name[1:], type_str, opcode, _NAME.findall(args),
               rest[close:], is_root, index, args)


def parse(text: str) -> Module:
  """Parses `compiled.as_text()`."""
  comps: dict[str, list[Instr]] = {}
  entry, current = None, None
  for line in text.splitlines():
    if current is None:
      m = _HEADER.match(line)
      if m:
        current = m.group(2).lstrip("%")
        comps[current] = []
        if m.group(1):
          entry = current
      continue
    if line.strip() == "}":
      current = None
      continue
    instr = _parse_instr(line)
    if instr is not None:
      comps[current].append(instr)
  if entry is None:
    raise ValueError("no ENTRY computation in the HLO text")
  return Module(comps, entry)


def _called(instr: Instr) -> Iterator[tuple[str, str]]:
  """(role, computation) pairs an instruction calls."""
  for role in ("calls", "body", "condition", "to_apply",
               "true_computation", "false_computation"):
    for m in re.finditer(rf"\b{role}=%([\w.\-]+)", instr.attrs):
      yield role, m.group(1)
  m = re.search(r"branch_computations=\{([^}]*)\}", instr.attrs)
  if m:
    for name in _NAME.findall(m.group(1)):
      yield "branch", name


def trip_count(module: Module, caller: str, instr: Instr) -> int | None:
  """Iterations of a while loop: backend_config, else its condition.

  The TPU compiler does not annotate trip counts; a scan's condition is
  `counter < N` on one tuple element whose initial value is a constant.
  """
  m = _TRIP.search(instr.attrs)
  if m:
    return int(m.group(1))
  cond = re.search(r"\bcondition=%([\w.\-]+)", instr.attrs)
  body = module.computations.get(cond.group(1), []) if cond else []
  table = {i.name: i for i in body}
  root = next((i for i in body if i.is_root), None)
  if root is None or root.opcode != "compare" or len(root.operands) != 2:
    return None
  direction = re.search(r"direction=(\w+)", root.attrs)
  lhs, rhs = (_through_copies(table, n) for n in root.operands)
  flip = {"GT": "LT", "GE": "LE"}
  d = direction.group(1) if direction else ""
  if lhs is not None and lhs.opcode == "constant" and d in flip:
    lhs, rhs, d = rhs, lhs, flip[d]
  if (lhs is None or rhs is None or lhs.opcode != "get-tuple-element"
      or rhs.opcode != "constant" or d not in ("LT", "LE")):
    return None
  index = re.search(r"index=(\d+)", lhs.attrs)
  limit = _constant_value(rhs)
  if index is None or limit is None:
    return None
  start = 0
  outer = {i.name: i for i in module.computations.get(caller, [])}
  init = outer.get(instr.operands[0]) if instr.operands else None
  if init is not None and init.opcode == "tuple":
    k = int(index.group(1))
    if k < len(init.operands):
      c = _through_copies(outer, init.operands[k])
      start = _constant_value(c) if c is not None and c.opcode == \
          "constant" else 0
  return max(0, limit - (start or 0) + (d == "LE"))


def _through_copies(table: dict[str, Instr], name: str) -> Instr | None:
  instr = table.get(name)
  while instr is not None and instr.opcode in ("copy", "bitcast",
                                               "convert") and instr.operands:
    instr = table.get(instr.operands[0])
  return instr


def _constant_value(instr: Instr) -> int | None:
  try:
    return int(float(instr.args))
  except ValueError:
    return None


@dataclasses.dataclass
class Structure:
  """How often each computation runs per step, and which are fused."""

  mult: dict[str, float]
  fused: set[str]  # bodies of fusions / async ops / reducers
  unknown_loops: int  # while loops without a known trip count (counted 1x)


def structure(module: Module, trips: bool = True) -> Structure:
  """Multiplicities; `trips=False` counts each loop body once (as XLA)."""
  mult = {module.entry: 1.0}
  fused: set[str] = set()
  unknown = 0
  order = [module.entry]
  seen = {module.entry}
  while order:
    comp = order.pop(0)
    for instr in module.computations.get(comp, []):
      for role, callee in _called(instr):
        k = mult[comp]
        if role == "body":
          n = trip_count(module, comp, instr)
          unknown += n is None
          k *= (n or 1) if trips else 1
        if role in ("calls", "to_apply") and instr.opcode != "call":
          fused.add(callee)
        mult[callee] = mult.get(callee, 0.0) + k
        if callee not in seen:
          seen.add(callee)
          order.append(callee)
  return Structure(mult, fused, unknown)


# ------------------------------------------------------------ collectives --


@dataclasses.dataclass
class Collective:
  """One collective instruction of the compiled program."""

  kind: str  # one of COLLECTIVES
  is_async: bool  # the '-start' form
  tensors: int  # operands combined in one (tuple-shaped) op
  operand_bytes: float  # per chip, all combined operands
  groups: list[list[int]] | None  # device indices, None when unknown
  group_size: int
  runs: float  # executions per step (loop trip counts)
  computation: str
  shapes: str  # operand shapes, for the report


def _operand_arrays(instr: Instr, table: dict[str, Instr]) -> list:
  out = []
  for name in instr.operands:
    if name in table:
      out.extend(table[name].arrays)
  return out


def parse_groups(attrs: str, num_devices: int) -> list[list[int]] | None:
  """Replica groups (device indices) in any of the three spellings."""
  m = re.search(r"replica_groups=\{(\{[^=]*?\})\}", attrs)
  if m:
    return [[int(x) for x in g.split(",") if x.strip()]
            for g in re.findall(r"\{([^{}]*)\}", m.group(1))]
  m = re.search(r"replica_groups=\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?",
                attrs)
  if m:
    shape = [int(x) for x in m.group(1).split(",")]
    dims = [int(x) for x in m.group(2).split(",")]
    ids = np.arange(math.prod(dims)).reshape(dims)
    if m.group(3):
      ids = ids.transpose([int(x) for x in m.group(3).split(",")])
    return ids.reshape(shape).tolist()
  m = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", attrs)
  if m:
    axes = re.findall(r"'([^']+)'=(\d+)", m.group(1))
    names = [a for a, _ in axes]
    sizes = [int(s) for _, s in axes]
    grouped = re.findall(r"'([^']+)'", m.group(2))
    ids = np.arange(math.prod(sizes)).reshape(sizes)
    keep = [i for i, a in enumerate(names) if a not in grouped]
    over = [names.index(a) for a in grouped]
    ids = ids.transpose(keep + over)
    size = math.prod(sizes[i] for i in over)
    return ids.reshape(-1, size).tolist()
  m = re.search(r"source_target_pairs=\{(.*?)\}\}", attrs)
  if m:
    pairs = re.findall(r"\{(\d+),(\d+)\}", m.group(0))
    return [[int(a), int(b)] for a, b in pairs]
  if re.search(r"replica_groups=\{\}", attrs):
    return [list(range(num_devices))]
  return None


def _live(module: Module, struct: Structure):
  """(computation, runs per step, symbol table) of every computation run."""
  for comp, instrs in module.computations.items():
    runs = struct.mult.get(comp, 0.0)
    if runs:
      yield comp, runs, {i.name: i for i in instrs}


def collectives(module: Module, num_devices: int,
                struct: Structure | None = None) -> list[Collective]:
  """Every collective of the module, with how often it runs per step."""
  struct = struct or structure(module)
  out = []
  for comp, runs, table in _live(module, struct):
    for instr in table.values():
      op = instr.opcode
      is_async = op.endswith("-start")
      base = op[:-len("-start")] if is_async else op
      if base not in COLLECTIVES:
        continue
      arrays = _operand_arrays(instr, table)
      groups = parse_groups(instr.attrs, num_devices)
      if base == "collective-permute":
        size = 2
      elif groups:
        size = len(groups[0])
      else:
        size = num_devices
      out.append(Collective(
          base, is_async, len(arrays),
          sum(array_bytes(d, s) for d, s in arrays), groups, size, runs,
          comp, ", ".join(f"{d}{list(s)}" for d, s in arrays[:4])
          + (" ..." if len(arrays) > 4 else "")))
  return out


# ------------------------------------------------------------------ costs --


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
  """Average number of kernel taps that hit real input, per output."""
  pad_lo = w.get("pad", [0, 0])[0]
  stride = w.get("stride", [1])[0]
  lhs_dil = w.get("lhs_dilate", [1])[0]
  rhs_dil = w.get("rhs_dilate", [1])[0]
  pos = (np.arange(n_out)[:, None] * stride
         + np.arange(k)[None, :] * rhs_dil - pad_lo)
  valid = (pos >= 0) & (pos <= (n_in - 1) * lhs_dil) & (pos % lhs_dil == 0)
  return float(valid.sum()) / max(n_out, 1)


def flops(module: Module, struct: Structure | None = None) -> float:
  """Matmul/convolution FLOPs per step (elementwise work not counted)."""
  struct = struct or structure(module)
  total = 0.0
  for _, runs, table in _live(module, struct):
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
  struct = struct or structure(module)
  total = 0.0
  for comp, runs, table in _live(module, struct):
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
