"""The trainer's step compiled for a TPU topology (v5e 2x2) on the CPU.

A tiny ViTPain student (Ti/16 at 32 px: the scanned blocks, both LoRA
adapter sets on the shared base, cross-attention, the on-device
augmentation) compiled data-parallel, where every chip holds whole pairs
and nothing but gradient reductions should cross chips; and the state the
fsdp_tp rules lay out on the same chips (abstract, not compiled). Needs
libtpu, which scripts/setup_env.sh installs into <venv>/libtpu.
"""

import pytest

from jaxpain import sharding as shd
from jaxpain.aot import analysis, chips, hlo
from jaxpain.aot import compile as aot_compile
from jaxpain.train import state

pytestmark = pytest.mark.skipif(
    chips.libtpu_path() is None,
    reason="libtpu not installed: scripts/setup_env.sh installs it")

TINY = "configs/baseline.py:runlocal,variant=Ti/16,size=32,patch=8,batch=8," \
       "train_base=0,sharding="
BLOCK = ("encoder", "blocks", 0)


@pytest.fixture(scope="module")
def devices():
  return chips.devices(chips.get("v5e-4"))


@pytest.fixture(scope="module")
def lowered(devices):
  config = aot_compile.load_config(TINY + "dp")
  return aot_compile.lower_and_compile(config, devices, source_size=32)


def _leaf(tree, *path):
  for key in path:
    tree = tree[key]
  return tree


def test_dp_step_replicates_parameters_and_splits_the_batch(lowered):
  assert dict(lowered.mesh.shape) == {"data": 4, "fsdp": 1, "tensor": 1}
  (train, consts, _, batch), _ = lowered.compiled.input_shardings
  fc1 = _leaf(consts, "frozen", *BLOCK, "fc1", "kernel")
  assert fc1.shard_shape((64, 128)) == (64, 128)
  lora_a = _leaf(train, "params", "lora", *BLOCK, "attn", "qkv", "lora_a")
  assert lora_a.shard_shape((2, 64, 8)) == (2, 64, 8)
  assert batch["image"].shard_shape((8, 32, 32, 3)) == (2, 32, 32, 3)
  assert batch["neutral"].shard_shape((8, 32, 32, 3)) == (2, 32, 32, 3)


def test_fsdp_tp_rules_lay_out_the_state(devices):
  config = aot_compile.load_config(TINY + "fsdp_tp")
  mesh = shd.mesh_from_config(config, devices)
  assert dict(mesh.shape) == {"data": 1, "fsdp": 2, "tensor": 2}
  with shd.abstract_init():
    setup = state.create(config, mesh, total_steps=1)
  frozen = setup.consts["frozen"]
  # ('embed', 'mlp') -> ('fsdp', 'tensor'): a quarter of the kernel each.
  fc1 = _leaf(frozen, *BLOCK, "fc1", "kernel")
  assert fc1.sharding.shard_shape(fc1.shape) == (32, 64)
  # qkv ('embed', 'qkv', 'heads', 'kv'): embed over fsdp, heads over tensor.
  qkv = _leaf(frozen, *BLOCK, "attn", "qkv", "kernel")
  assert qkv.sharding.shard_shape(qkv.shape) == (32, 3, 1, 32)
  # Trained LoRA A and its Adam moments: ('adapter', 'embed', 'lora_rank').
  lora_a = _leaf(setup.train["params"], "lora", *BLOCK, "attn", "qkv",
                 "lora_a")
  assert lora_a.sharding.shard_shape(lora_a.shape) == (2, 32, 8)
  assert shd.batch_sharding(mesh, config.batch_axes).shard_shape(
      (8, 32, 32, 3)) == (4, 32, 32, 3)


def test_per_chip_hbm_is_within_bounds(lowered):
  chip = chips.CHIPS["v5e"]
  mem = analysis.memory(lowered.compiled, chip)
  assert mem["argument"] > 0 and mem["alias"] > 0  # donated state aliases
  assert 0 < mem["peak"] < 0.25 * 2**30 < chip.hbm_bytes


def test_augmentation_costs_less_than_the_model(lowered, devices):
  step = analysis.cost(lowered.compiled)["bytes"]
  augmentation = aot_compile.compile_augmentation(lowered.config, devices,
                                                  source_size=32)
  aug = analysis.cost(augmentation)["bytes"]
  assert 0 < aug <= step - aug
  assert " gather(" not in augmentation.as_text()  # matmuls and shifts


def test_no_collective_reshuffles_the_batch(lowered):
  module = hlo.parse(lowered.compiled.as_text())
  found = hlo.collectives(module, 4)
  # Pain and neutral rows interleave, so every pair stays on its chip: no
  # all-to-all or collective-permute. Gradients are reduced; XLA may split
  # a reduction into slices gathered back (weight-update sharding), which
  # moves the trained LoRA slices (f32, at most one adapter stack per op),
  # never an activation.
  assert {c.kind for c in found} <= {"all-reduce", "all-gather"}
  lora_stack = 2 * 3 * 64 * 8 * 4  # the largest: qkv B (2, 3*64, 8), f32
  for c in found:
    if c.kind == "all-gather":
      assert c.shapes.startswith("f32[1,"), c.shapes
      assert c.operand_bytes * c.group_size <= lora_stack, c.shapes


def test_multislice_mesh_puts_only_data_across_slices():
  topo = chips.Topology("2xv5e-4", chips.CHIPS["v5e"], "2x2", 2)
  devices = chips.devices(topo)
  assert shd.num_slices(devices) == 2
  config = aot_compile.load_config(TINY + "fsdp")
  mesh = shd.mesh_from_config(config, devices)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
  # Each fsdp group (a row along 'fsdp') lies inside one slice.
  for row in mesh.devices.reshape(2, 4):
    assert len({d.slice_index for d in row}) == 1
