"""Distil a low-resolution student inside a LightningModule (pip install "reskd[lightning]").
(Not named lightning.py: run as a script, that name would shadow the lightning package.)

    python examples/lightning_module.py --data DIR --teacher runs/teacher/model.pt --out student.pt

The same recipe as examples/own_loop.py: reskd makes the views and the loss, Lightning runs
the loop (devices, precision, logging, checkpoints). DIR holds train.txt, as `reskd data
synth` / `reskd data convert` write it.
"""
import argparse
from pathlib import Path

import lightning as L
import numpy as np
import torch

import reskd


class ResKD(L.LightningModule):
    """The student, distilled from `teacher` on views of `views` (feature KD, weight 100)."""

    def __init__(self, teacher: torch.nn.Module, student: torch.nn.Module, views: reskd.Views):
        super().__init__()
        self.views = views
        self.distiller = reskd.Distiller(teacher, student, feature=100.0)

    def training_step(self, batch, batch_idx):
        clips, labels = batch  # (N, T, C, H, W) uint8 crops, on the module's device
        teacher_view, student_view = self.views(clips)
        parts = self.distiller(teacher_view, student_view, labels)
        self.log_dict({k: parts[k] for k in ("ce", "feature_kd")}, prog_bar=True)
        return parts["loss"]

    def configure_optimizers(self):
        return torch.optim.AdamW(self.distiller.student.parameters(), lr=2e-3)  # never the teacher


class Clips(torch.utils.data.Dataset):
    """One training crop (T, C, S, S) uint8 per listed video, as the views' recipe cuts it."""

    def __init__(self, root: Path, views: reskd.Views, sampling: reskd.Sampling):
        self.root, self.views, self.sampling = root, views, sampling
        self.items = [line.split() for line in (root / "train.txt").read_text().splitlines()]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        rng = np.random.default_rng()
        frames = reskd.read_video(self.root / path, lambda n: self.sampling.train_indices(n, rng))
        return self.views.train_crop(frames, rng), int(label)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--out", default="student.pt")
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    teacher = reskd.load_model(args.teacher)
    pre = teacher.preprocessing
    views = reskd.Views(teacher_size=pre.size, student_size=pre.size // 2, mean=pre.mean,
                        std=pre.std)
    student = reskd.build_model(**{**teacher.build_options, "num_segments": pre.frames})
    data = Clips(args.data, views, reskd.Sampling(num_segments=pre.frames))
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="auto", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(ResKD(teacher, student, views), loader)
    reskd.save_student(student, args.out, views=views, classes=list(pre.classes),
                       frames=pre.frames)
    print(f"saved {args.out}")
