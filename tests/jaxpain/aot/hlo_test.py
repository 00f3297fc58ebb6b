"""Reading compiled HLO text: loops, collectives in all spellings, costs."""

import pytest

from jaxpain.aot import hlo, hlo_cost

# A hand-written optimized-HLO excerpt with the forms the TPU compiler
# prints: tuple-shaped and async collectives, the three replica-group
# spellings, a scanned loop whose trip count only its condition tells (as
# the TPU compiler prints it), a fused dynamic-slice.
TEXT = """
HloModule jit_step, entry_computation_layout={()->()}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%fused_slice (param_0: f32[12,64,64], param_1: s32[]) -> f32[1,64,64] {
  %param_0 = f32[12,64,64]{2,1,0} parameter(0)
  %param_1 = s32[] parameter(1)
  %c = s32[] constant(0)
  ROOT %ds = f32[1,64,64]{2,1,0} dynamic-slice(%param_0, %param_1, %c, %c), dynamic_slice_sizes={1,64,64}
}

%body (p: (s32[], f32[8,64], f32[12,64,64])) -> (s32[], f32[8,64], f32[12,64,64]) {
  %p = (s32[], f32[8,64]{1,0}, f32[12,64,64]{2,1,0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %x = f32[8,64]{1,0} get-tuple-element(%p), index=1
  %w = f32[12,64,64]{2,1,0} get-tuple-element(%p), index=2
  %wi = f32[1,64,64]{2,1,0} fusion(%w, %i), kind=kLoop, calls=%fused_slice
  %wb = f32[64,64]{1,0} bitcast(%wi)
  %y = f32[8,64]{1,0} dot(%x, %wb), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %ag = f32[16,64]{1,0} all-gather(%y), channel_id=3, replica_groups=[2,2]<=[4], dimensions={0}
  %y2 = f32[8,64]{1,0} slice(%ag), slice={[0:8], [0:64]}
  ROOT %t = (s32[], f32[8,64]{1,0}, f32[12,64,64]{2,1,0}) tuple(%i, %y2, %w)
}

%cond (p: (s32[], f32[8,64], f32[12,64,64])) -> pred[] {
  %p = (s32[], f32[8,64]{1,0}, f32[12,64,64]{2,1,0}) parameter(0)
  %n = s32[]{:T(128)} constant(12)
  %k = s32[]{:T(128)} get-tuple-element(%p), index=0
  ROOT %lt = pred[]{:T(512)} compare(%k, %n), direction=LT
}

ENTRY %main (x: f32[8,64], w: f32[12,64,64]) -> f32[8,64] {
  %x = f32[8,64]{1,0} parameter(0)
  %w = f32[12,64,64]{2,1,0} parameter(1)
  %z = s32[] constant(0)
  %z2 = s32[] copy(%z)
  %init = (s32[], f32[8,64]{1,0}, f32[12,64,64]{2,1,0}) tuple(%z2, %x, %w)
  %loop = (s32[], f32[8,64]{1,0}, f32[12,64,64]{2,1,0}) while(%init), condition=%cond, body=%body
  %h = f32[8,64]{1,0} get-tuple-element(%loop), index=1
  %ar = (f32[8,64]{1,0}, f32[64]{0}) all-reduce(%h, %h), channel_id=1, replica_groups=mesh['axis_0'=2,'axis_1'=2] {'axis_1'}, use_global_device_ids=true, to_apply=%add
  %r = f32[8,64]{1,0} get-tuple-element(%ar), index=0
  %cp = (f32[8,64]{1,0}, f32[8,64]{1,0}, u32[]) collective-permute-start(%r), channel_id=2, source_target_pairs={{0,1},{1,0},{2,3},{3,2}}
  %cpd = f32[8,64]{1,0} collective-permute-done(%cp)
  ROOT %a2a = f32[8,64]{1,0} all-to-all(%cpd), channel_id=4, replica_groups={{0,1,2,3}}, dimensions={0}
}
"""


@pytest.fixture(scope="module")
def module():
  return hlo.parse(TEXT)


def test_loop_bodies_run_their_trip_count(module):
  real = hlo.structure(module)
  assert module.entry == "main"
  assert real.mult["body"] == 12 and real.unknown_loops == 0
  assert "fused_slice" in real.fused and "add" in real.fused
  assert hlo.structure(module, trips=False).mult["body"] == 1


def test_trip_count_from_backend_config():
  loop = hlo.Instr("w", "()", "while", ["init"],
                   ', body=%b, backend_config={"known_trip_count":{"n":"24"}}')
  assert hlo.trip_count(hlo.Module({"main": []}, "main"), "main", loop) == 24


def test_collectives_found_in_every_spelling(module):
  found = {(c.kind, c.is_async): c for c in hlo.collectives(module, 4)}
  assert set(found) == {("all-gather", False), ("all-reduce", False),
                        ("collective-permute", True), ("all-to-all", False)}
  ag = found[("all-gather", False)]
  assert ag.runs == 12 and ag.groups == [[0, 1], [2, 3]]
  assert ag.operand_bytes == 8 * 64 * 4
  ar = found[("all-reduce", False)]
  assert ar.tensors == 2 and ar.groups == [[0, 1], [2, 3]]
  assert ar.operand_bytes == 2 * 8 * 64 * 4  # both tuple operands
  assert found[("collective-permute", True)].groups[:2] == [[0, 1], [1, 0]]
  assert found[("all-to-all", False)].groups == [[0, 1, 2, 3]]


def test_mesh_groups_over_the_named_axis():
  attrs = "replica_groups=mesh['axis_0'=2,'axis_1'=3] {'axis_0'}, x=1"
  assert hlo.parse_groups(attrs, 6) == [[0, 3], [1, 4], [2, 5]]
  iota = "replica_groups=[3,2]<=[2,3]T(1,0), dimensions={0}"
  assert hlo.parse_groups(iota, 6) == [[0, 3], [1, 4], [2, 5]]


def test_flops_and_bytes_count_every_iteration(module):
  real, once = hlo.structure(module), hlo.structure(module, trips=False)
  per_dot = 2 * 8 * 64 * 64
  assert hlo_cost.flops(module, real) == 12 * per_dot
  assert hlo_cost.flops(module, once) == per_dot
  # The fused dynamic-slice reads one 64x64 slice per iteration, not the
  # whole stacked 12x64x64 operand.
  body_bytes = (hlo_cost.bytes_accessed(module, real)
                - hlo_cost.bytes_accessed(module, once)) / 11
  dot = (8 * 64 + 64 * 64 + 8 * 64) * 4
  ds = 2 * 64 * 64 * 4 + 4
  assert body_bytes < dot + ds + 3 * 16 * 64 * 4 + 1
  assert body_bytes > dot + ds


MULTISLICE = """
HloModule jit_step, num_partitions=4

ENTRY %main (x: f32[4,128]) -> f32[4,128] {
  %x = f32[4,128]{1,0} parameter(0)
  %tok = token[] after-all()
  %send = (f32[4,128]{1,0}, u32[], token[]) send(%x, %tok), channel_id=3, is_host_transfer=true, frontend_attributes={_xla_host_transfer_handler_name="xla_megascale_runtime",_xla_megascale_reduce_operation="SUM",_xla_megascale_target="{1,2}x{0:3}",_xla_megascale_transfer_type="ALL_REDUCE"}
  %recv = (f32[4,128]{1,0}, u32[], token[]) recv(%tok), channel_id=2, is_host_transfer=true, frontend_attributes={_xla_megascale_target="{1,2}x{0:3}",_xla_megascale_transfer_type="ALL_REDUCE"}
  ROOT %y = f32[4,128]{1,0} get-tuple-element(%recv), index=0
}
"""


def test_dcn_collectives_of_a_multislice_program_are_found():
  # Compiled per slice, its DCN all-reduce is a Megascale send/recv pair:
  # counted once, over the 2 slices, with the bytes each chip sends.
  found = hlo.collectives(hlo.parse(MULTISLICE), 4)
  assert [(c.kind, c.dcn_slices, c.operand_bytes) for c in found] == [
      ("all-reduce", 2, 4 * 128 * 4)]


def test_valid_taps_match_a_direct_count():
  import itertools

  import numpy as np

  from jaxpain.aot import hlo_cost

  def direct(k, n_in, n_out, pad, stride, lhs_dil, rhs_dil):
    pos = (np.arange(n_out)[:, None] * stride
           + np.arange(k)[None, :] * rhs_dil - pad)
    ok = (pos >= 0) & (pos <= (n_in - 1) * lhs_dil) & (pos % lhs_dil == 0)
    return ok.sum() / n_out

  for k, n_in, pad, stride, lhs_dil, rhs_dil in itertools.product(
      (1, 3, 7), (5, 16), (0, 1, 3), (1, 2, 3), (1, 2, 3, 4), (1, 2)):
    n_out = max(1, ((n_in - 1) * lhs_dil + 1 + 2 * pad
                    - (k - 1) * rhs_dil - 1) // stride + 1)
    w = {"pad": [pad, pad], "stride": [stride], "lhs_dilate": [lhs_dil],
         "rhs_dilate": [rhs_dil]}
    assert hlo_cost._valid_taps(k, n_in, n_out, w) == pytest.approx(
        direct(k, n_in, n_out, pad, stride, lhs_dil, rhs_dil))
  # A window over a whole batch axis is counted without a k x n matrix.
  assert hlo_cost._valid_taps(65536, 65536, 1, {}) == 65536
  assert hlo_cost._valid_taps(65536, 65536, 65536, {"lhs_dilate": [2],
                                                    "pad": [65535, 0]}) > 0
