"""`runtime.precision=auto` is measured: `pick_precision` keeps the candidate its timer says is
faster, caches the answer per model shape and machine, tolerates a corrupt cache, leaves the
model as it found it, and times nothing where fp32 is the only candidate."""

from __future__ import annotations

import json

import pytest
import torch

from reskd.engine import runtime
from reskd.engine.runtime import (
    autocast_dtype,
    pick_precision,
    precision_cache_path,
    precision_candidates,
    prepare_model,
)
from reskd.models import build_model

CPU = torch.device("cpu")
SHAPE = (2, 2, 3, 16, 16)  # (N, T, C, H, W)
BOTH = [torch.bfloat16, None]  # what a CPU with native bf16 offers; forced here


def tiny(seed: int = 0) -> torch.nn.Module:
    """The demo's small ResNet (TSN, BatchNorm, dropout), at 2 frames. Widths of 8 and up:
    with 2 or 4 input channels, torch 2.14.1's fp32 channels_last backward of a 1x1 stride-2
    convolution corrupted the heap on this project's AVX2 AMD EPYC."""
    torch.manual_seed(seed)
    return build_model("resnet", num_classes=3, block="basic", layers=(1, 1, 1, 1),
                       widths=(8, 8, 16, 16), stem="small", num_segments=2)


class FakeTimer:
    """Runs every case once per round, as interleaved_rates does, and reports `rates` calls/s."""

    def __init__(self, rates: dict[str, float]):
        self.rates, self.calls = rates, 0

    def __call__(self, cases, *, rounds, min_seconds, device):
        self.calls += 1
        for fn in cases.values():
            fn()
        return {name: [self.rates[name]] * rounds for name in cases}


def no_timing(*_, **__):
    raise AssertionError("timed although the answer was known")


@pytest.mark.parametrize(("rates", "expected"), [({"bf16": 3.0, "fp32": 2.0}, torch.bfloat16),
                                                 ({"bf16": 2.0, "fp32": 3.0}, None)])
def test_keeps_the_candidate_the_timer_says_is_faster(tmp_path, rates, expected):
    lines = []
    timer = FakeTimer(rates)
    kept = pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, timer=timer,
                          cache_path=tmp_path / "p.json", log=lines.append)
    assert kept is expected and timer.calls == 1
    name = "bf16" if expected is torch.bfloat16 else "fp32"
    # one line: the kept precision and both rates in clips/s (calls/s x batch 2)
    assert len(lines) == 1 and lines[0].startswith(f"precision auto: {name} (")
    assert f"bf16 {rates['bf16'] * 2:.2f}" in lines[0]
    assert f"fp32 {rates['fp32'] * 2:.2f}" in lines[0]


def test_a_tie_keeps_the_first_candidate(tmp_path):
    kept = pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, timer=FakeTimer(
        {"bf16": 2.0, "fp32": 2.0}), cache_path=tmp_path / "p.json", log=lambda _: None)
    assert kept is torch.bfloat16


def test_the_answer_is_cached_by_model_shape_and_machine_and_reused(tmp_path):
    path = tmp_path / "cache" / "precision.json"  # the folder is made
    model = tiny()
    pick_precision(model, SHAPE, CPU, candidates=BOTH, timer=FakeTimer({"bf16": 1.0, "fp32": 5.0}),
                   cache_path=path, log=lambda _: None)
    (key, entry), = json.loads(path.read_text()).items()
    fields = json.loads(key)
    params = sum(p.numel() for p in model.parameters())
    assert fields["model"] == {"class": type(model).__name__, "params": params,
                               "input": list(SHAPE), "channels_last": False}
    assert fields["training"] is True and fields["teacher"] is None
    assert fields["candidates"] == ["bf16", "fp32"]
    assert fields["device"].startswith("cpu: ") and fields["torch"] == torch.__version__
    assert fields["threads"] == torch.get_num_threads()
    assert entry["precision"] == "fp32" and entry["clips_per_s"] == {"bf16": 2.0, "fp32": 10.0}

    lines = []  # the same shape again: read, not timed
    assert pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, timer=no_timing, cache_path=path,
                          log=lines.append) is None
    assert lines[0].startswith("precision auto: fp32 (cached in ")
    # another batch shape, inference, or channels_last is another key, timed afresh
    timer = FakeTimer({"bf16": 5.0, "fp32": 1.0})
    assert pick_precision(tiny(), (4, *SHAPE[1:]), CPU, candidates=BOTH, timer=timer,
                          cache_path=path, log=lambda _: None) is torch.bfloat16
    pick_precision(tiny(), SHAPE, CPU, training=False, candidates=BOTH, timer=timer,
                   cache_path=path, log=lambda _: None)
    pick_precision(prepare_model(tiny(), CPU, True), SHAPE, CPU, candidates=BOTH, timer=timer,
                   cache_path=path, log=lambda _: None)
    assert timer.calls == 3 and len(json.loads(path.read_text())) == 4
    assert not list(path.parent.glob(".precision.*"))  # no temp file left behind


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_a_corrupt_cache_is_ignored_with_a_warning_and_rewritten(tmp_path, text):
    path = tmp_path / "precision.json"
    path.write_text(text)
    with pytest.warns(UserWarning, match="ignoring the precision cache"):
        kept = pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, cache_path=path,
                              timer=FakeTimer({"bf16": 1.0, "fp32": 2.0}), log=lambda _: None)
    assert kept is None
    assert [e["precision"] for e in json.loads(path.read_text()).values()] == ["fp32"]


def test_an_entry_edited_into_nonsense_is_timed_again(tmp_path):
    path = tmp_path / "precision.json"
    pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, timer=FakeTimer({"bf16": 1.0, "fp32": 2.0}),
                   cache_path=path, log=lambda _: None)
    for bad in ({"precision": "fp8", "clips_per_s": {}}, {"precision": "bf16"}, "bf16",
                {"precision": "bf16", "clips_per_s": {"bf16": "fast"}}):
        path.write_text(json.dumps({key: bad for key in json.loads(path.read_text())}))
        timer = FakeTimer({"bf16": 1.0, "fp32": 2.0})
        assert pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, timer=timer, cache_path=path,
                              log=lambda _: None) is None and timer.calls == 1


def test_weights_batchnorm_statistics_grads_modes_and_rng_are_restored(tmp_path):
    """Real steps (the product's timer, bf16 and fp32) move BatchNorm statistics and draw
    dropout masks; afterwards the model, the teacher and the RNG are as they were."""
    model, teacher = tiny(0), tiny(1)
    teacher.eval()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    pick_precision(model, SHAPE, CPU, teacher=teacher, teacher_shape=(2, 2, 3, 32, 32),
                   candidates=BOTH, rounds=1, min_seconds=0.0, cache_path=tmp_path / "p.json",
                   log=lambda _: None)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    assert model.state_dict()["backbone.bn1.num_batches_tracked"].item() == 0
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not teacher.training
    assert torch.equal(torch.get_rng_state(), rng)

    # so the run goes on bit-identical to one that never timed: one SGD step each
    def one_step(m):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        torch.manual_seed(7)
        m(torch.randn(SHAPE)).sum().backward()
        opt.step()
        return m.state_dict()

    fresh = tiny(0)
    fresh.train()
    ours, theirs = one_step(model), one_step(fresh)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_cpu_without_native_bf16_times_nothing_and_trains_in_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert precision_candidates(CPU) == [None]
    assert autocast_dtype("auto", CPU) is None
    path = tmp_path / "p.json"
    assert pick_precision(tiny(), SHAPE, CPU, timer=no_timing, cache_path=path) is None
    assert not path.exists()

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert precision_candidates(CPU) == [torch.bfloat16, None]
    assert autocast_dtype("auto", CPU) is torch.bfloat16  # the unmeasured guess
    timer = FakeTimer({"bf16": 1.0, "fp32": 2.0})
    assert pick_precision(tiny(), SHAPE, CPU, timer=timer, cache_path=path,
                          log=lambda _: None) is None and timer.calls == 1


def test_the_cache_lives_where_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.delenv("RESKD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert precision_cache_path() == tmp_path / "xdg" / "reskd" / "precision.json"
    monkeypatch.setenv("RESKD_CACHE_DIR", str(tmp_path / "mine"))
    assert precision_cache_path() == tmp_path / "mine" / "precision.json"
    monkeypatch.delenv("RESKD_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert precision_cache_path() == tmp_path / "home" / ".cache" / "reskd" / "precision.json"


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", CPU)
    with pytest.raises(ValueError, match="at least one precision"):
        pick_precision(tiny(), SHAPE, CPU, candidates=[])
    with pytest.raises(ValueError, match="teacher_shape"):
        pick_precision(tiny(), SHAPE, CPU, candidates=BOTH, teacher=tiny())


def test_reskd_train_with_auto_times_once_then_trains_as_the_explicit_precision_would(
        tmp_path, monkeypatch, capsys):
    """The training entry point: `auto` on a (pretend) native-bf16 CPU times, logs, caches;
    the weights equal those of a run given the kept precision; a second run reads the cache."""
    from conftest import sets, write_data_config
    from reskd.checkpoint import load_checkpoint
    from reskd.cli import main
    from reskd.data.synth import make_synth_dataset

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv("RESKD_CACHE_DIR", str(tmp_path / "cache"))
    make_synth_dataset(tmp_path / "data", seed=1, num_train=16, num_val=8, workers=1)
    config = write_data_config(tmp_path / "tiny.yaml", tmp_path / "data", val_list="")
    tiny_run = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
                "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
                "data.batch_size=8", "data.workers=0", "optim.epochs=1", "data.size=32",
                "runtime.progress=false", "runtime.tensorboard=false", "data.val_list="]

    def train(name: str, precision: str) -> tuple[str, dict]:
        args = ["train", str(config), *sets(*tiny_run, f"runtime.precision={precision}",
                                            f"runtime.out={tmp_path / name}")]
        assert main(args) == 0
        return capsys.readouterr().out, load_checkpoint(tmp_path / name / "model.pt")["model"]

    printed, auto = train("auto", "auto")
    line = next(x for x in printed.splitlines() if x.startswith("precision auto: "))
    kept = line.split()[2]
    assert kept in ("bf16", "fp32") and "bf16 " in line and "fp32 " in line
    (key, entry), = json.loads((tmp_path / "cache" / "precision.json").read_text()).items()
    assert json.loads(key)["model"]["input"] == [8, 2, 3, 32, 32] and entry["precision"] == kept
    assert f"cpu, {kept}, channels_last" in printed

    _, explicit = train("explicit", kept)
    assert all(torch.equal(auto[k], explicit[k]) for k in auto)
    printed, _ = train("again", "auto")
    assert f"precision auto: {kept} (cached in " in printed
