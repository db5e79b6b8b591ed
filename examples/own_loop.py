"""Distil a low-resolution student in a plain PyTorch loop of your own, with reskd's recipe.

    python examples/own_loop.py --data DIR --teacher runs/teacher/model.pt --out student.pt

DIR holds train.txt ("relative/path.mp4 LABEL" per line), as `reskd data synth` / `convert`
write it. The student sees half the teacher's size; `reskd test`, `predict`, `export` and
`flops` take the saved file.
"""
import argparse
from pathlib import Path

import numpy as np
import torch

import reskd

p = argparse.ArgumentParser()
p.add_argument("--data", type=Path, required=True)
p.add_argument("--teacher", required=True)
p.add_argument("--out", default="student.pt")
p.add_argument("--epochs", type=int, default=1)
args = p.parse_args()

teacher = reskd.load_model(args.teacher)  # carries its size, mean/std, frames and classes
pre = teacher.preprocessing
views = reskd.Views(teacher_size=pre.size, student_size=pre.size // 2, mean=pre.mean, std=pre.std)
sampling = reskd.Sampling(num_segments=pre.frames)
student = reskd.build_model(**{**teacher.build_options, "num_segments": pre.frames})


class Clips(torch.utils.data.Dataset):
    def __init__(self, list_file: Path):
        self.items = [line.split() for line in list_file.read_text().splitlines() if line]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        rng = np.random.default_rng()
        frames = reskd.read_video(args.data / path, lambda n: sampling.train_indices(n, rng))
        return views.train_crop(frames, rng), int(label)  # (T, C, S, S) uint8, one crop


loader = torch.utils.data.DataLoader(Clips(args.data / "train.txt"), batch_size=8, shuffle=True)
distiller = reskd.Distiller(teacher, student, feature=100.0)  # feature KD, the paper's weight
optimizer = torch.optim.AdamW(student.parameters(), lr=2e-3)
for epoch in range(args.epochs):
    distiller.train()  # the student; the frozen teacher keeps its own mode
    for clips, labels in loader:
        teacher_view, student_view = views(clips)  # the same crop at two sizes, normalised
        parts = distiller(teacher_view, student_view, labels)
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: loss {parts['loss'].item():.3f}, ce {parts['ce'].item():.3f}, "
          f"feature_kd {parts['feature_kd'].item():.4f}")
reskd.save_student(student, args.out, views=views, classes=list(pre.classes), frames=pre.frames)
print(f"saved {args.out}: {reskd.gmacs(student, size=views.student_size, frames=pre.frames)} GMACs")
