"""The temporal sampler's chunk compiled for a TPU topology (v5e 2x2) on
the CPU: what the streams-per-chip figure of docs/benchmarks.md rests on.
Needs libtpu, which scripts/setup_env.sh installs into <venv>/libtpu."""

import pytest

from jaxpain.aot import analysis, chips, hlo

pytestmark = pytest.mark.skipif(
    chips.libtpu_path() is None,
    reason="libtpu not installed: scripts/setup_env.sh installs it")


@pytest.fixture(scope="module")
def res():
  from jaxpain.bench import temporal_tpu

  return temporal_tpu.run("v5e-4", [2, 4], variant="tiny")


def test_scan_is_counted_per_row_and_work_scales_with_streams(res):
  two, four = res["rows"]
  assert res["chips"] == 4 and two["fits"] and four["fits"]
  assert four["flops"] == pytest.approx(2 * two["flops"], rel=0.05)
  # Every denoiser evaluation of the pyramid counted (27 rows, 4 guidance
  # branches, 16 tokens): at least 2 FLOPs per parameter and token, and
  # not much more (attention and the frame conv add a fraction).
  per_token = two["flops"] / (two["streams_per_chip"]
                              * res["evaluations_per_chunk"]
                              * res["guidance_branches"] * 16)
  assert 2 * res["parameters"] <= per_token <= 5 * res["parameters"]


def test_streams_follow_from_the_roofline(res):
  for r in res["rows"]:
    assert r["t_chunk_s"] == max(r["t_flops_s"], r["t_bytes_s"]) > 0
    assert r["realtime_streams_per_chip"] == pytest.approx(
        r["streams_per_chip"] * res["chunk_seconds"] / r["t_chunk_s"])
  assert res["chunk_seconds"] == pytest.approx(48 / 25)


def test_streams_are_independent_no_collective():
  from jaxpain.bench import temporal_tpu

  devices = chips.devices(chips.get("v5e-4"))
  net, scfg = temporal_tpu.build("tiny", "bfloat16")
  compiled, _ = temporal_tpu.compile_chunk(net, scfg, devices, 8)
  module = hlo.parse(compiled.as_text())
  assert analysis.collective_records(module, devices) == []


@pytest.mark.parametrize("argv, words", [
    (["--topology", "v9x-4"], "unknown topology"),
    (["--streams", "0,8"], "positive"),
    (["--streams", "eight"], "invalid literal"),
    (["--variant", "huge", "--streams", "2"], "huge"),
])
def test_bad_input_is_one_line_and_status_2(argv, words, tmp_path, capsys):
  from jaxpain.bench import temporal_tpu

  with pytest.raises(SystemExit) as e:
    temporal_tpu.main(argv + ["--out", str(tmp_path / "out")])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and words in err[0], err
  assert not (tmp_path / "out").exists()
