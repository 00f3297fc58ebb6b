"""Reading a compiled (optimized) HLO module: loops and collectives.

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
FLOPs and HBM bytes are read in hlo_cost.py.
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
  dcn_slices: int = 0  # > 0: a multi-slice (Megascale) transfer over DCN


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


def live(module: Module, struct: Structure):
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
  for comp, runs, table in live(module, struct):
    for instr in table.values():
      op = instr.opcode
      is_async = op.endswith("-start")
      base = op[:-len("-start")] if is_async else op
      if base == "send" and _MEGASCALE.search(instr.attrs):
        out.append(_megascale(instr, table, runs, comp))
        continue
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


# A multi-slice program is compiled per slice (num_partitions = chips per
# slice): its DCN collectives are host-transfer send/recv pairs that the
# Megascale runtime runs, e.g. _xla_megascale_transfer_type="ALL_REDUCE",
# _xla_megascale_target="{1,2}x{0:255}" (slices x chips).
_MEGASCALE = re.compile(r'_xla_megascale_transfer_type="(\w+)"')
_MEGASCALE_TARGET = re.compile(r'_xla_megascale_target="\{([\d,]+)\}')


def _megascale(instr: Instr, table: dict[str, Instr], runs: float,
               comp: str) -> Collective:
  """The DCN collective one Megascale send stands for (the recv is its
  other half, not counted again)."""
  kind = _MEGASCALE.search(instr.attrs).group(1).lower().replace("_", "-")
  target = _MEGASCALE_TARGET.search(instr.attrs)
  slices = len(target.group(1).split(",")) if target else 2
  arrays = [a for a in _operand_arrays(instr, table) if a[0] != "token"]
  return Collective(
      kind, False, len(arrays), sum(array_bytes(d, s) for d, s in arrays),
      None, slices, runs, comp,
      ", ".join(f"{d}{list(s)}" for d, s in arrays[:4]), dcn_slices=slices)
