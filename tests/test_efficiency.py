"""Efficiency reports: GMACs as the paper counts them, throughput modes, resolution sweeps.

GMACs are counted on meta-built models (shapes only); throughput runs use a tiny ResNet, so
only the fields and the bookkeeping are asserted, never a speed.
"""

from __future__ import annotations

import json

import pytest
import torch

from reskd.checkpoint import save_checkpoint
from reskd.efficiency.benchmark import (
    bench_report,
    default_vs_fastest,
    fastest_default_mode,
    format_bench,
    interleaved_rates,
    mode_settings,
)
from reskd.efficiency.flops import count_macs
from reskd.experiments.sweep import flops_report, format_flops, format_sweep, sweep
from reskd.models import build_from_kwargs, build_model, drop_ignored_options
from reskd.models.fold import fold_batchnorm

PNG = b"\x89PNG\r\n\x1a\n"
TINY = {"arch": "resnet", "num_classes": 3, "block": "basic", "layers": [1, 1, 1, 1],
        "widths": [8, 16, 32, 64], "stem": "small", "strides": [1, 2, 2, 2], "dropout": 0.0,
        "num_segments": 2}


def tiny_checkpoint(path, *, size: int = 16, frames: int = 2, **changes):
    kwargs = {**TINY, **changes}
    model = build_model(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
    save_checkpoint({"model": model.state_dict(), "model_kwargs": kwargs, "size": size,
                     "frames": frames, "classes": ["a", "b", "c"][:kwargs["num_classes"]],
                     "metrics": {}}, path)
    return path, model


# ---- flops -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "paper"), [(224, 65.9), (56, 4.8)])
def test_flops_report_reproduces_table4_cells(size: int, paper: float) -> None:
    r = flops_report(model_name="resnet50", size=size, frames=16, num_classes=200)
    assert round(r["gmacs_per_video"], 1) == paper
    assert r["paper_gmacs"] == paper
    assert r["gmacs_per_video"] == r["gmacs_per_view"]  # one view
    assert r["input_shape_per_view"] == [1, 16, 3, size, size]
    assert r["params_m"] == pytest.approx(23.92, abs=0.01)  # ResNet-50 trunk + 200-class fc


def test_flops_report_multiplies_views_and_keeps_matmuls_apart() -> None:
    r = flops_report(model_name="swin3d_s", size=112, frames=32, views=12)
    assert r["gmacs_per_video"] == pytest.approx(12 * r["gmacs_per_view"])
    assert r["gmacs_per_video"] == pytest.approx(421.0, rel=0.01)  # the paper's cell
    assert r["gmacs_with_matmul_per_video"] > r["gmacs_per_video"] * 1.1
    text = format_flops(r)
    assert "gmacs_with_matmul" in text and "421.0" in text


def test_flops_report_from_a_checkpoint_counts_the_stored_model(tmp_path) -> None:
    path, model = tiny_checkpoint(tmp_path / "model.pt", size=16, frames=2)
    r = flops_report(checkpoint=path)  # size and frames from the checkpoint
    assert (r["size"], r["frames"], r["num_classes"]) == (16, 2, 3)
    expected = count_macs(model, torch.zeros(1, 2, 3, 16, 16))
    assert r["gmacs_per_view"] == pytest.approx(expected.gmacs, rel=1e-12)
    assert r["params_m"] == pytest.approx(expected.params_m)
    assert r["paper_gmacs"] is None and "checkpoint" in format_flops(r)


def test_flops_report_errors_name_the_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet5'.*resnet50"):
        flops_report(model_name="resnet5", size=112, frames=8)
    with pytest.raises(ValueError, match="exactly one of model_name"):
        flops_report(size=112, frames=8)
    with pytest.raises(ValueError, match="size and frames"):
        flops_report(model_name="resnet50", frames=8)
    with pytest.raises(ValueError, match="views"):
        flops_report(model_name="resnet50", size=112, frames=8, views=0)
    with pytest.raises(FileNotFoundError):
        flops_report(checkpoint=tmp_path / "missing.pt")


# ---- bench -----------------------------------------------------------------------------------


def test_bench_report_times_each_size_and_mode_and_stores_the_context() -> None:
    rows = bench_report(model_name="resnet", sizes=[32, 16], frames=2, batch=1,
                        modes=["fp32", "channels_last"], device="cpu", num_classes=3, rounds=1,
                        min_seconds=0.0)
    assert [(r["size"], r["mode"]) for r in rows] == [
        (32, "fp32"), (32, "channels_last"), (16, "fp32"), (16, "channels_last")]
    for r in rows:
        assert r["videos_per_s"] > 0 and r["latency_ms"] > 0
        assert len(r["videos_per_s_rounds"]) == 1
        assert r["shape"] == [1, 2, 3, r["size"], r["size"]]
        assert r["device"].startswith("cpu") and r["dtype"] == "fp32" and r["batch"] == 1
        assert r["threads"] == torch.get_num_threads() and r["torch"] == torch.__version__
        assert r["channels_last"] == (r["mode"] == "channels_last")
        assert r["compile_s"] is None
    assert "default mode here" in format_bench(rows)


def test_bench_report_skips_fp16_on_cpu_with_a_note_and_rejects_unknown_modes() -> None:
    rows = bench_report(model_name="resnet", sizes=[16], frames=1, batch=1, modes=["fp16"],
                        device="cpu", num_classes=3, rounds=1, min_seconds=0.0)
    assert rows[0]["videos_per_s"] is None and "CUDA only" in rows[0]["note"]
    with pytest.raises(ValueError, match="unknown benchmark mode 'int8'.*channels_last"):
        mode_settings("int8", torch.device("cpu"))
    with pytest.raises(ValueError, match="sizes"):
        bench_report(model_name="resnet", sizes=[0], frames=1, batch=1, modes=["fp32"])


@pytest.mark.parametrize(("native_bf16", "mode"), [(False, "fold_bn"), (True, "bf16")])
def test_default_mode_follows_autocast_auto(monkeypatch, native_bf16: bool, mode: str) -> None:
    monkeypatch.setattr("reskd.engine.runtime.cpu_has_fast_bf16", lambda: native_bf16)
    d = fastest_default_mode("cpu")
    assert d["mode"] == mode and d["channels_last"] and not d["compile"]
    assert mode_settings(d["mode"], torch.device("cpu"))["amp_dtype"] == (
        torch.bfloat16 if native_bf16 else None)


def test_default_vs_fastest_compares_within_each_size() -> None:
    def row(size, mode, vps):
        return {"model": "m", "size": size, "frames": 8, "batch": 4, "mode": mode,
                "default_mode": "channels_last", "videos_per_s": vps}

    rows = [row(112, "fp32", 5.0), row(112, "channels_last", 9.0), row(112, "compile", 10.0),
            row(56, "fp32", 30.0), row(56, "channels_last", 20.0), row(56, "bf16", None)]
    by_size = {c["size"]: c for c in default_vs_fastest(rows, tolerance=0.1)}
    assert by_size[112]["fastest_mode"] == "compile"
    assert by_size[112]["ratio"] == pytest.approx(0.9) and by_size[112]["ok"]
    assert by_size[56]["fastest_mode"] == "fp32" and not by_size[56]["ok"]
    assert by_size[56]["ratio"] == pytest.approx(2 / 3)


def test_interleaved_rates_rotates_the_order_every_round() -> None:
    calls = []
    cases = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    rates = interleaved_rates(cases, rounds=3, min_seconds=0.0)
    assert calls == list("abc") + list("bca") + list("cab")
    assert all(len(r) == 3 and min(r) > 0 for r in rates.values())


@pytest.mark.parametrize(("arch", "frames"), [("resnet", 2), ("tsm_resnet18", 4)])
def test_fold_batchnorm_removes_every_bn_and_keeps_the_outputs(arch: str, frames: int) -> None:
    torch.manual_seed(0)
    # tsm_resnet18 ignores TINY's widths and stem: reset them (a ResNet-18)
    kwargs = drop_ignored_options({**TINY, "arch": arch, "num_segments": frames})
    model = build_from_kwargs(kwargs).eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:  # non-trivial statistics, so a wrong fold shows
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    folded, n = fold_batchnorm(model)
    assert n == len(bns) > 0
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    x = torch.randn(2, frames, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ---- sweep -----------------------------------------------------------------------------------


def test_sweep_without_checkpoints_writes_table_json_and_plot(tmp_path) -> None:
    payload = sweep(model_name="resnet", sizes=[32, 16], frames=2, out=tmp_path, batch=1,
                    num_classes=3, rounds=1, min_seconds=0.0, device="cpu", log=lambda m: None)
    rows = {r["size"]: r for r in payload["rows"]}
    assert rows[32]["reduction"] == 1.0 and rows[32]["speedup"] == 1.0
    assert rows[16]["reduction"] == pytest.approx(rows[32]["gmacs"] / rows[16]["gmacs"])
    assert rows[16]["accuracy"] is None and rows[16]["videos_per_s"] > 0
    md = (tmp_path / "sweep.md").read_text()
    assert "| resolution | 32p | 16p |" in md and "Accuracy: not measured" in md
    assert json.loads((tmp_path / "sweep.json").read_text())["rows"][1]["size"] == 16
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == PNG


def test_sweep_tests_each_checkpoint_at_its_size(tmp_path, monkeypatch) -> None:
    ckpt, _ = tiny_checkpoint(tmp_path / "s16.pt", size=16, frames=2)
    config = tmp_path / "cfg.yaml"
    config.write_text("data:\n  size: 224\n")
    seen = []

    def fake_run_test(cfg, checkpoint, *, log=print):
        seen.append((cfg.data.size, str(checkpoint), cfg.runtime.seed))
        return {"top1": 61.5, "top5": 90.0, "num_videos": 4, "failed": ["x\tbad"], "size": 16}

    monkeypatch.setattr("reskd.runs.run_test", fake_run_test)
    payload = sweep(sizes=[32, 16], frames=2, out=tmp_path / "out", checkpoints={16: ckpt},
                    config=config, overrides=["runtime.seed=3"], batch=1, rounds=1,
                    min_seconds=0.0, device="cpu", log=lambda m: None)
    assert seen == [(16, str(ckpt), 3)]
    rows = {r["size"]: r for r in payload["rows"]}
    assert rows[16]["accuracy"] == 61.5 and rows[16]["metric"] == "top1"
    assert rows[16]["test"]["num_failed"] == 1 and rows[32]["accuracy"] is None
    assert payload["model"] == "resnet"
    assert "top-1 (%) |  | 61.5 |" in format_sweep(payload)
    assert (tmp_path / "out" / "tradeoff.png").read_bytes()[:8] == PNG


def test_sweep_rejects_mixed_architectures_and_stray_sizes(tmp_path) -> None:
    ckpt, _ = tiny_checkpoint(tmp_path / "s16.pt")
    with pytest.raises(ValueError, match="one architecture"):
        sweep(model_name="resnet18", sizes=[32, 16], frames=2, out=tmp_path / "o",
              checkpoints={16: ckpt}, log=lambda m: None)
    other, _ = tiny_checkpoint(tmp_path / "s32.pt", size=32, widths=[8, 16, 32, 32])
    with pytest.raises(ValueError, match="one architecture"):
        sweep(sizes=[32, 16], frames=2, out=tmp_path / "o", checkpoints={16: ckpt, 32: other},
              log=lambda m: None)
    with pytest.raises(ValueError, match=r"sizes \[64\]"):
        sweep(model_name="resnet", sizes=[32, 16], frames=2, out=tmp_path / "o",
              checkpoints={64: ckpt}, log=lambda m: None)
    with pytest.raises(ValueError, match="frames"):
        sweep(sizes=[32, 16], frames=4, out=tmp_path / "o", checkpoints={16: ckpt},
              log=lambda m: None)
