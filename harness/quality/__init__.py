"""Image-quality core: functional metrics of a synthetic image set against real images.

numpy first (torch tensors are accepted); torch, torchmetrics, clean-fid and PIL are imported
only inside the functions that need them, so importing this package is cheap.

- :mod:`.fidelity`: :func:`feature_stats`, :func:`frechet_distance` (clean-fid's), :func:`kid`,
  :func:`fd_ratio` (FD normalised by real-vs-real FD at equal sample size)
- :mod:`.prdc`: :func:`prdc` (precision / recall / density / coverage, Naeem et al. 2020)
- :mod:`.diversity`: :func:`ms_ssim_diversity`, :func:`pixel_spread` (per label group)
- :mod:`.memorization`: :func:`nearest`, :func:`memorization`, :func:`image_memorization`,
  :func:`save_worst_pairs` (near copies of training images, mirrored copies included)
"""

from .diversity import label_groups, ms_ssim_diversity, ms_ssim_settings, pixel_spread
from .fidelity import fd_ratio, feature_stats, frechet_distance, kid
from .memorization import NearestTrain, image_memorization, memorization, nearest, save_worst_pairs
from .prdc import knn_radii, prdc

__all__ = [
    "feature_stats",
    "frechet_distance",
    "kid",
    "fd_ratio",
    "prdc",
    "knn_radii",
    "ms_ssim_diversity",
    "ms_ssim_settings",
    "pixel_spread",
    "label_groups",
    "nearest",
    "NearestTrain",
    "memorization",
    "image_memorization",
    "save_worst_pairs",
]
