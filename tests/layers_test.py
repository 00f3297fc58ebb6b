"""The package layers point one way, and no module imports itself round.

    synth  ->  tfds_3dpain  ->  jaxpain

The data flows that way (faces are made, stored as a dataset, then trained
on), so a lower layer never imports a higher one: a user of
`tfds.load('unbc_mcmaster')` must not pull in the trainer. Every import
counts, also one inside a function, because a lazy import is still a
dependency. The rule is checked from the source text (no module is
imported), so this test is fast and cannot be fooled by import order.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lower index = lower layer. A module may import its own layer or lower.
LAYERS = ("synth", "tfds_3dpain", "jaxpain")


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
  return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def project_modules() -> dict[str, str]:
  """Dotted module name -> file path, for every module of the packages."""
  out = {}
  for pkg in LAYERS:
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
      dirnames[:] = [d for d in dirnames if d != "__pycache__"]
      for f in filenames:
        if f.endswith(".py"):
          path = os.path.join(dirpath, f)
          out[_module_name(path)] = path
  return out


def _is_type_checking(node: ast.If) -> bool:
  t = node.test
  return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
      isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_pkg: bool):
  """Dotted names a module imports (runtime imports only), with lines."""
  skip = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.If) and _is_type_checking(node):
      skip.update(id(n) for n in ast.walk(node))
  for node in ast.walk(tree):
    if id(node) in skip:
      continue
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against this module's package
        parts = module.split(".")
        parts = parts if is_pkg else parts[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
      for alias in node.names:
        yield f"{base}.{alias.name}", node.lineno
        yield base, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
  """module -> {project module it imports: line of the first import}."""
  modules = project_modules()
  graph = {}
  for mod, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    is_pkg = path.endswith("__init__.py")
    edges = {}
    for name, line in _imported_names(tree, mod, is_pkg):
      # `from a.b import c`: the edge goes to a.b.c when that is a module,
      # else (c is a name in a.b) to a.b, which is yielded separately.
      if name in modules and name != mod:
        edges.setdefault(name, line)
    # Drop a.b when a.b.c is imported through `from a.b import c`: the
    # package is only the path to the submodule.
    for name in list(edges):
      if any(other.startswith(name + ".") for other in edges):
        del edges[name]
    graph[mod] = edges
  return graph


def _layer(module: str) -> int:
  return LAYERS.index(module.split(".")[0])


def upward_imports(graph) -> list[str]:
  return sorted(
      f"{src} (layer {LAYERS[_layer(src)]}) imports {dst} at line {line}"
      for src, edges in graph.items() for dst, line in edges.items()
      if _layer(dst) > _layer(src))


def cycles(graph) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


@pytest.fixture(scope="module")
def graph():
  return import_graph()


def test_every_layer_is_found(graph):
  # Guards the test itself: an empty graph would pass every rule below.
  for pkg in LAYERS:
    assert any(m.startswith(pkg + ".") for m in graph), pkg
  assert sum(len(e) for e in graph.values()) > 100


def test_no_upward_import(graph):
  bad = upward_imports(graph)
  assert not bad, ("imports against the layer order "
                   + " -> ".join(LAYERS) + ":\n  " + "\n  ".join(bad))


def test_no_import_cycle(graph):
  found = cycles(graph)
  assert not found, "import cycles:\n  " + "\n  ".join(
      " <-> ".join(c) for c in found)


def test_checker_sees_function_level_and_relative_imports(tmp_path):
  # The checks above only mean something if lazy and relative imports are
  # edges too; prove it on a fabricated module text.
  src = ("import os\nfrom . import sibling\n"
         "def f():\n  from jaxpain.eval import metrics\n")
  names = {n for n, _ in _imported_names(ast.parse(src), "synth.x", False)}
  assert "synth.sibling" in names
  assert "jaxpain.eval.metrics" in names
  fake = {"synth.a": {"jaxpain.b": 3}, "jaxpain.b": {"synth.a": 1}}
  assert upward_imports(fake) == [
      "synth.a (layer synth) imports jaxpain.b at line 3"]
  assert cycles(fake) == [["jaxpain.b", "synth.a"]]
