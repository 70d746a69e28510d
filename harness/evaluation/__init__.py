"""Evaluation core: functional metrics, bootstrap CIs, DeLong tests and the evaluation report.

numpy / scipy only (no torch), so importing it is cheap and it can be checked against
reference implementations (sklearn) in isolation.

- :mod:`.metrics`: :func:`auroc`, :func:`aupr`, :func:`choose_threshold`, :func:`threshold_metrics`
- :mod:`.bootstrap`: :func:`bootstrap_ci` (by image or by patient), :func:`bootstrap_distribution`
- :mod:`.delong`: :func:`delong_roc_variance`, :func:`delong_paired_test`, :func:`bonferroni`
- :mod:`.report`: :func:`evaluate`, :func:`compare_to_baseline`, :func:`choose_thresholds`
- :mod:`.subgroups`: :func:`subgroup_report` (per-group AUROC / FNR / FPR, worst-to-best gaps),
  :func:`subgroup_values`, :func:`age_band`, :func:`subgroup_reports`
- :mod:`.ranking`: :func:`kendall_tau`, :func:`ranking_agreement` (internal vs external model ranking)
- :mod:`.transfer`: :func:`transfer_gap` (external - internal macro AUROC, vs a baseline)
- :mod:`.segmentation`: :func:`dice_per_image`, :func:`iou_per_image`, :func:`hd95_per_image`,
  :func:`segmentation_per_image`, :func:`segmentation_report` (mean Dice / IoU / HD95 with
  patient-level bootstrap CIs), :func:`segmentation_summary`, :func:`compare_dice`
"""

from .bootstrap import BootstrapResult, bootstrap_ci, bootstrap_distribution, percentile_ci, resample_weights
from .delong import bonferroni, delong_covariance, delong_paired_test, delong_roc_variance
from .metrics import THRESHOLD_METHODS, aupr, auroc, choose_threshold, threshold_metrics, weighted_aupr, weighted_auroc
from .ranking import kendall_tau, ranking_agreement
from .report import choose_thresholds, compare_to_baseline, evaluate
from .subgroups import age_band, subgroup_report, subgroup_reports, subgroup_values
from .segmentation import (
    compare_dice,
    dice_per_image,
    hd95_per_image,
    iou_per_image,
    segmentation_per_image,
    segmentation_report,
    segmentation_summary,
)
from .transfer import transfer_gap, two_sample_weights

__all__ = [
    "auroc",
    "aupr",
    "weighted_auroc",
    "weighted_aupr",
    "choose_threshold",
    "threshold_metrics",
    "THRESHOLD_METHODS",
    "bootstrap_ci",
    "bootstrap_distribution",
    "BootstrapResult",
    "percentile_ci",
    "resample_weights",
    "delong_roc_variance",
    "delong_covariance",
    "delong_paired_test",
    "bonferroni",
    "evaluate",
    "compare_to_baseline",
    "choose_thresholds",
    "age_band",
    "subgroup_values",
    "subgroup_report",
    "subgroup_reports",
    "kendall_tau",
    "ranking_agreement",
    "transfer_gap",
    "two_sample_weights",
    "dice_per_image",
    "iou_per_image",
    "hd95_per_image",
    "segmentation_per_image",
    "segmentation_summary",
    "segmentation_report",
    "compare_dice",
]
