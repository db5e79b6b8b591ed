"""The paper's optimizer recipes: parameter groups (bias lr x2, backbone lr x0.1, no weight
decay on Swin's bias tables), the step schedule and warm-up start, gradient accumulation (equal
to one big batch) and an exact mid-epoch resume with accumulation."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reskd.config import ConfigError, OptimConfig, load_config
from reskd.engine.optim import make_optimizer, make_schedule
from reskd.engine.train import Interrupted, train_step
from reskd.models import build_model

CPU = torch.device("cpu")


def tiny_resnet() -> nn.Module:
    return build_model("resnet", num_classes=5, widths=(8, 8, 16, 16), stem="small",
                       num_segments=2, dropout=0.0)


def group_of(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, dict]:
    """{parameter name: its group}; each trainable parameter in exactly one group."""
    where = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(where)
    assert len(where) == sum(1 for p in model.parameters() if p.requires_grad)
    return {n: where[id(p)] for n, p in model.named_parameters()}


def test_groups_bias_twice_backbone_a_tenth_head_once():
    model = tiny_resnet()
    opt = make_optimizer(model, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                         weight_decay=1e-4, bias_lr_mult=2.0, backbone_lr_mult=0.1)
    g = group_of(opt, model)
    lr_wd = {n: (pytest.approx(x["lr"]), x["weight_decay"]) for n, x in g.items()}
    assert lr_wd["fc.weight"] == (0.1, 1e-4)
    assert lr_wd["fc.bias"] == (0.2, 0.0)  # a linear layer's bias: 2x, no decay
    assert lr_wd["backbone.conv1.weight"] == (0.01, 1e-4)
    assert lr_wd["backbone.bn1.weight"] == (0.01, 0.0)
    assert lr_wd["backbone.bn1.bias"] == (0.01, 0.0)  # a norm's bias is not a bias here
    assert all(x["lr"] == pytest.approx(0.1 * x["lr_mult"]) for x in opt.param_groups)


def test_swin_bias_tables_and_norms_get_no_weight_decay():
    model = build_model("swin3d_t", num_classes=5)
    names = OptimConfig().no_decay_names
    opt = make_optimizer(model, optimizer="adamw", lr=1e-3, momentum=0.9, nesterov=False,
                         weight_decay=0.05, bias_lr_mult=1.0, backbone_lr_mult=0.1,
                         no_decay_names=names)
    g = group_of(opt, model)
    tables = [n for n in g if n.endswith("relative_position_bias_table")]
    assert tables and all(p.ndim == 2 for n, p in model.named_parameters() if n in tables)
    assert all(g[n]["weight_decay"] == 0.0 and g[n]["lr"] == pytest.approx(1e-4) for n in tables)
    norms = [n for n in g if ".norm" in n]
    assert norms and all(g[n]["weight_decay"] == 0.0 for n in norms)
    assert g["backbone.features.0.0.attn.qkv.weight"]["weight_decay"] == 0.05
    assert g["backbone.patch_embed.proj.bias"]["lr"] == pytest.approx(1e-4)
    assert g["fc.weight"]["lr"] == pytest.approx(1e-3)
    plain = group_of(make_optimizer(model, optimizer="adamw", lr=1e-3, momentum=0.9,
                                    nesterov=False, weight_decay=0.05), model)
    assert all(plain[n]["weight_decay"] == 0.05 for n in tables)  # the key is what exempts them


def test_lr_multipliers_survive_the_schedule_and_a_reload():
    model = tiny_resnet()

    def fresh():
        opt = make_optimizer(model, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                             weight_decay=1e-4, bias_lr_mult=2.0, backbone_lr_mult=0.1)
        schedule = make_schedule(schedule="cosine", epochs=2, steps_per_epoch=4, warmup_epochs=0)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule), schedule

    opt, sched, schedule = fresh()
    for _ in range(3):
        opt.step()
        sched.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([0.1 * g["lr_mult"] * schedule(3) for g in opt.param_groups])
    opt2, sched2, _ = fresh()
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


def test_step_schedule_with_mmcv_warmup():
    # mmaction2 SlowOnly, 150 epochs: x0.1 at 90 and 130, 10 warm-up epochs from 0.1 x lr
    s = make_schedule(schedule="step", epochs=150, steps_per_epoch=10, warmup_epochs=10,
                      warmup_start_factor=0.1, milestones=(90, 130), gamma=0.1)
    assert [s(0), s(50), s(100), s(899)] == pytest.approx([0.1, 0.55, 1.0, 1.0])
    assert [s(900), s(1299), s(1300), s(1499)] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_warmup_start_factor_and_defaults():
    cos = make_schedule(schedule="cosine", epochs=10, steps_per_epoch=10, warmup_epochs=2,
                        warmup_start_factor=0.1)
    assert [cos(0), cos(10), cos(20), cos(60)] == pytest.approx([0.1, 0.55, 1.0, 0.5])
    old = make_schedule(schedule="cosine", epochs=10, steps_per_epoch=10, warmup_epochs=2)
    assert old(0) == 0.0 and old(10) == pytest.approx(0.5)  # the default starts at 0
    one = make_schedule(schedule="onecycle", epochs=10, steps_per_epoch=10, warmup_epochs=0)
    assert one(0) == pytest.approx(1 / 25) and one(30) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="schedule must be one of cosine, step, onecycle"):
        make_schedule(schedule="poly", epochs=1, steps_per_epoch=1, warmup_epochs=0)


@pytest.mark.parametrize("overrides, message", [
    (["optim.schedule=step", "optim.milestones=[130, 90]", "optim.epochs=150"], "optim.milestones"),
    (["optim.schedule=step", "optim.milestones=[90, 150]", "optim.epochs=150"], "optim.epochs - 1"),
    (["optim.schedule=step", "optim.epochs=150"], "needs increasing epochs"),
    (["optim.milestones=[10]"], "only used by optim.schedule=step"),
    (["optim.schedule=poly"], "optim.schedule: expected one of cosine, step, onecycle"),
    (["optim.accumulate=0"], "optim.accumulate: must be >= 1"),
    (["optim.bias_lr_mult=0"], "optim.bias_lr_mult: must be positive"),
    (["optim.backbone_lr_mult=-0.1"], "optim.backbone_lr_mult: must be positive"),
    (["optim.schedule=onecycle", "optim.warmup_start_factor=0.1"], "lr/25"),
    (["optim.warmup_start_factor=2"], "optim.warmup_start_factor: must be in"),
    (["optim.no_decay_names=['']"], "optim.no_decay_names"),
])
def test_bad_optim_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, overrides)


def test_backbone_lr_mult_needs_a_backbone():
    with pytest.raises(ValueError, match="no parameters under a 'backbone' module"):
        make_optimizer(nn.Linear(2, 2), optimizer="sgd", lr=0.1, momentum=0.0, nesterov=False,
                       weight_decay=0.0, backbone_lr_mult=0.1)


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_accumulating_two_batches_equals_one_batch_twice_as_big(clip):
    """k=2 micro-batches of b clips: the same gradients, clip and update as one batch of 2b.
    BatchNorm in eval mode (batch statistics would differ by construction), dropout 0."""
    torch.manual_seed(0)
    a, b = tiny_resnet().eval(), tiny_resnet().eval()
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(4, 2, 3, 32, 32), torch.tensor([0, 1, 2, 3])  # (N, T, C, H, W)

    def opt(m):
        return make_optimizer(m, optimizer="sgd", lr=0.5, momentum=0.0, nesterov=False,
                              weight_decay=0.0, bias_lr_mult=2.0)

    whole = train_step(a, {"student": x, "label": y}, optimizer=opt(a), device=CPU,
                       grad_clip=clip)
    parts = train_step(b, [{"student": x[:2], "label": y[:2]}, {"student": x[2:], "label": y[2:]}],
                       optimizer=opt(b), device=CPU, grad_clip=clip)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-5, atol=1e-7), n
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-7), n
    assert parts["loss"].item() == pytest.approx(whole["loss"].item(), rel=1e-6)
    assert parts["grad_norm"].item() == pytest.approx(whole["grad_norm"].item(), rel=1e-5)
    assert parts["hits"].item() == whole["hits"].item()
    assert torch.allclose(parts["logits"], whole["logits"], atol=1e-6)  # (2b, K), in order


def test_resume_mid_epoch_with_accumulation_equals_an_uninterrupted_run(tmp_path_factory):
    """accumulate=3 over 8 batches an epoch: 2 steps (the last 2 batches are not loaded);
    stopped 1 step into epoch 2 and resumed, the run ends bit-identical to one never stopped."""
    from conftest import write_data_config
    from reskd.data.synth import make_synth_dataset
    from reskd.runs import run_train
    from test_resume import TINY, assert_same_run

    data = tmp_path_factory.mktemp("synth")
    make_synth_dataset(data, seed=1, num_train=48, num_val=16, workers=1)
    config = write_data_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", data)
    recipe = [*TINY, "data.batch_size=6", "optim.accumulate=3", "runtime.log_every=1",
              "optim.schedule=step", "optim.milestones=[1]", "optim.warmup_epochs=0.5",
              "optim.warmup_start_factor=0.1", "optim.bias_lr_mult=2.0"]

    def run(out, extra=(), **kwargs):
        return run_train(load_config(config, [*recipe, *extra, f"runtime.out={out}"]),
                         distill=False, log=lambda _: None, **kwargs)

    whole = tmp_path_factory.mktemp("whole")
    run(whole)
    records = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]  # optimizer steps: 8 // 3 an epoch
    assert records[1]["lr"] == pytest.approx(0.002 * 0.1)  # after the milestone

    calls = {"n": 0}

    def stop_after_step_3():  # asked after each step and after epoch 1: the 4th ask is step 3
        calls["n"] += 1
        return "SIGTERM" if calls["n"] == 4 else None

    out = tmp_path_factory.mktemp("stopped")
    with pytest.raises(Interrupted, match="1 steps into epoch 2"):
        run(out, should_stop=stop_after_step_3)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["step"], ckpt["global_batch"]) == (1, 1, 3, 18)
    run(out, resume=True)
    assert_same_run(whole, out)
    with pytest.raises(ValueError, match=r"optim.backbone_lr_mult or optim.no_decay_names .*"
                                         r"it had: optim.bias_lr_mult=2.0"):
        run(out, ["optim.bias_lr_mult=1.0"], resume=True)  # 2 groups now, 3 in the checkpoint


@pytest.mark.slow  # a torchrun launch of two processes
def test_accumulation_under_ddp_matches_one_process(tmp_path):
    """2 processes x batch 4 x accumulate 2 (the first backward under `no_sync`) vs 1 process x
    batch 8 x accumulate 2: the same videos in each micro-batch, the same steps. SGD at a small
    lr keeps the float summation-order noise small (AdamW amplifies it on near-zero gradients,
    see test_distributed): measured losses within 1e-6 relative, weights and BatchNorm
    statistics within 1.5e-6."""
    from conftest import sets, write_data_config
    from reskd.data.synth import make_synth_dataset
    from reskd.runs import run_train
    from test_distributed import LOSS_RTOL, TINY, records, torchrun

    make_synth_dataset(tmp_path / "data", seed=1, num_train=48, num_val=16, workers=1)
    config = write_data_config(tmp_path / "tiny.yaml", tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    recipe = [*TINY, "optim.optimizer=sgd", "optim.lr=0.005", "optim.accumulate=2"]
    run_train(load_config(config, [*recipe, "data.batch_size=8",
                                   f"runtime.out={one}"]), distill=False, log=lambda _: None)
    torchrun("train", str(config), *sets(*recipe, "data.batch_size=4",
                                         f"runtime.out={two}"))
    a, b = records(one), records(two)
    assert [r["step"] for r in b] == [r["step"] for r in a] == [3, 6]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=LOSS_RTOL)
    wa = torch.load(one / "model.pt", weights_only=True)["model"]
    wb = torch.load(two / "model.pt", weights_only=True)["model"]
    for k in wa:
        if wa[k].is_floating_point():
            torch.testing.assert_close(wb[k], wa[k], atol=1e-5, rtol=0, msg=k)
