"""reskd: cross-resolution knowledge distillation (ResKD) for video recognition.

A teacher sees clips at high resolution, a student the same clips at low resolution, and the
student learns the teacher's pre-pool feature map besides the labels. The public API, for
one's own training loop (every name here is in `__all__` and documented with its shapes):

- models: `build_model`, `load_model` (reskd, torchvision, mmaction2 sources), `save_student`,
  `gmacs`;
- the view recipe: `Views` (one crop, a teacher view and a student view, normalised);
- the loss: `Distiller` (frozen teacher + student -> {"loss", "ce", each KD term});
- data: `read_video`, `Sampling` (which frames a clip takes).

Layouts: decoded frames are (T, H, W, C) uint8; clips given to `Views` and models are
(N, T, C, H, W); models return logits (N, K) and pre-pool maps (N, T', C', h, w).
"""

from importlib.metadata import PackageNotFoundError, version

from reskd.api import Preprocessing, build_model, gmacs, load_model, read_video, save_student
from reskd.data.sampling import Sampling
from reskd.data.transforms import Views
from reskd.distill.distiller import Distiller

try:
    __version__ = version("reskd")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Distiller",
    "Preprocessing",
    "Sampling",
    "Views",
    "build_model",
    "gmacs",
    "load_model",
    "read_video",
    "save_student",
]
