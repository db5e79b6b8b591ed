"""`reskd compare`: two tiny real runs side by side, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_data_config

TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
        "data.short_side_ratio=1.0", "data.batch_size=8", "data.workers=0", "optim.epochs=2",
        "runtime.progress=false", "runtime.val_every=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    from reskd.config import load_config
    from reskd.data.synth import make_synth_dataset
    from reskd.runs import run_train

    data = tmp_path_factory.mktemp("synth")
    make_synth_dataset(data, seed=1, num_train=32, num_val=16, workers=1)
    config = write_data_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", data)
    out = tmp_path_factory.mktemp("runs")
    for name, sets in (("small", ["data.size=24", "optim.lr=0.01"]),
                       ("large", ["data.size=32", "optim.lr=0.01"])):
        run_train(load_config(config, [*TINY, *sets, f"runtime.out={out / name}"]),
                  distill=False, log=lambda _: None)
    return out / "small", out / "large"


def test_compare_writes_the_table_and_the_curves_labelled_by_what_differs(runs, tmp_path):
    small, large = runs
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "reskd", "compare", str(small), str(large),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = (out / "compare.md").read_text().splitlines()
    assert table[2].startswith("| run | differs in | top-1 (%) | GMACs / video | GMACs saved |")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table[4:] if line}
    assert rows["small"][1] == "data.size=24" and rows["large"][1] == "data.size=32"
    from reskd.checkpoint import load_checkpoint

    gmacs = {name: load_checkpoint(run / "model.pt")["gmacs"] for name, run in
             (("small", small), ("large", large))}
    assert gmacs["large"] > gmacs["small"]  # 32 px costs more than 24 px
    assert rows["small"][3] == f"{gmacs['small']:.4f}" and rows["small"][4] == "1.0x"
    assert rows["large"][4] == f"{gmacs['small'] / gmacs['large']:.1f}x"
    assert rows["small"][5] == "24x24, 2 frames" and rows["small"][7] == "2/2"
    top1 = json.loads((small / "metrics.jsonl").read_text().splitlines()[-1])["val"]["top1"]
    assert rows["small"][2] == f"{top1:.1f}"
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| small | data.size=24 |" in proc.stdout


def test_labels_name_every_differing_key_and_a_teacher_by_its_run(runs, tmp_path):
    from reskd.analysis.compare import read_run, run_labels

    a, b = read_run(runs[0]), read_run(runs[1])
    b.config = {**b.config, "optim.lr": 0.02, "distill.teacher": "/x/teacher64/model.pt"}
    assert run_labels([a, b]) == ["data.size=24, optim.lr=0.01",
                                  "data.size=32, distill.teacher=teacher64, optim.lr=0.02"]
    assert run_labels([a, a]) == ["", ""]  # nothing differs


def test_a_folder_that_is_not_a_run_is_named_with_what_a_run_holds(tmp_path):
    from reskd.analysis.compare import compare_runs

    with pytest.raises(FileNotFoundError, match="not a run folder.*config.yaml and metrics.jsonl"):
        compare_runs([tmp_path], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        compare_runs([tmp_path / "nope"], tmp_path / "out")


def test_markdown_table_refuses_a_row_of_the_wrong_width():
    from reskd.analysis.compare import markdown_table

    assert markdown_table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        markdown_table(["a", "b"], [["1"]])


def test_without_the_tensorboard_package_a_run_says_how_to_get_curves(tmp_path, monkeypatch):
    from reskd.engine.tensorboard import open_writer

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    logged: list[str] = []
    assert open_writer(tmp_path, resume_step=None, log=logged.append) is None
    assert "pip install tensorboard" in logged[0] and "metrics.jsonl" in logged[0]
    assert not (tmp_path / "tensorboard").exists()


def test_a_new_run_replaces_the_curves_of_the_run_it_replaces(runs, tmp_path):
    import shutil

    from reskd.engine.tensorboard import open_writer

    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    assert list((run / "tensorboard").glob("events.*"))
    open_writer(run, resume_step=None, log=print).close()
    assert len(list((run / "tensorboard").glob("events.*"))) == 1  # the new run's alone
