"""The plugin kit: everything a third-party plugin may import besides the contracts.

A plugin imports ``cxrbench.contracts`` (the base classes and data types),
``cxrbench.errors``, ``cxrbench.hookspecs`` (``hookimpl``) and this package; every other
``cxrbench`` module is the harness's own and may change without notice. The built-in plugins
(``plugins/`` in the repository) follow the same rule.

- :mod:`cxrbench.kit.presets`: named size presets and option metadata for generators
  (:class:`LearnedOptions`, :func:`resolve_config`, :func:`explicit_options`, :func:`config_hash`,
  :func:`check_learned_config`, :data:`SAMPLING`, :data:`NOT_FIT`, :data:`RUNTIME`,
  :data:`RUNTIME_KEYS`);
- :mod:`cxrbench.kit.conditioning`: labels + demographics -> float vector
  (:class:`ConditionEncoder`, :func:`sex_value`, :func:`age_value`, :func:`race_value`,
  :func:`is_missing`);
- :mod:`cxrbench.kit.checkpoints`: pickle-free checkpoints (:func:`save_tensors`,
  :func:`load_tensors`, :func:`write_json`, :func:`read_json`, :func:`optimizer_to_tensors`,
  :func:`optimizer_from_tensors`, :func:`atomic_write`) and the checkpoint directory of a
  learned generator (:func:`write_weights`, :func:`read_weights`,
  :func:`read_checkpoint_config`, :func:`write_training_checkpoint`,
  :func:`read_training_state`, :func:`load_tensor_files`);
- :mod:`cxrbench.kit.ema`: :class:`EMA` of a module's weights;
- :mod:`cxrbench.kit.images`: uint8 <-> model range (:func:`resize_uint8`,
  :func:`to_model_range`, :func:`from_model_range`), :func:`equalize_hist` (the loader's
  equalization), reproducible noise (:func:`seed_generator`, :func:`step_generator`,
  :func:`padded_chunks`), :func:`data_fingerprint`, :func:`count_parameters`,
  :func:`peak_memory_mb`;
- :mod:`cxrbench.kit.learned`: :class:`LearnedGenerator`, the fit / resume / generate /
  save / load base class of learned generators, and :class:`OptimizerEMAState`, the
  checkpoint hooks of one with a single optimizer and EMA weights;
- :mod:`cxrbench.kit.datasets`: for dataset plugins (:class:`FolderDataset`,
  :func:`find_dataset_dir`, :func:`read_table`, :func:`read_image_file`,
  :func:`carve_validation`, :class:`CarvedValidationOptions`, :func:`split_by_patient`,
  :func:`default_cache_dir`);
- :mod:`cxrbench.kit.prep`: the loaders' resize for plugins (:func:`fit_image`);
- :mod:`cxrbench.kit.reference`: :class:`ReferenceClassifier` (and :class:`ReferenceOptions`),
  the small CNN trained on a real training split that `proxy-filter`, label fidelity and the
  domain-feature metrics share;
- :mod:`cxrbench.kit.runtime`: the harness's device, precision and progress-bar choices
  (:func:`resolve_device`, :func:`autocast`, :func:`bar`, :func:`progress_enabled`).

Importing the kit does not import torch: every function imports it when called.
"""

from cxrbench.kit.checkpoints import (
    atomic_write,
    load_tensor_files,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_checkpoint_config,
    read_json,
    read_training_state,
    read_weights,
    save_tensors,
    write_json,
    write_training_checkpoint,
    write_weights,
)
from cxrbench.kit.conditioning import ConditionEncoder, age_value, is_missing, race_value, sex_value
from cxrbench.kit.datasets import (
    CarvedValidationOptions,
    FolderDataset,
    carve_validation,
    default_cache_dir,
    find_dataset_dir,
    read_image_file,
    read_table,
    split_by_patient,
)
from cxrbench.kit.ema import EMA
from cxrbench.kit.images import (
    count_parameters,
    data_fingerprint,
    equalize_hist,
    from_model_range,
    padded_chunks,
    peak_memory_mb,
    resize_uint8,
    seed_generator,
    step_generator,
    to_model_range,
)
from cxrbench.kit.learned import LearnedGenerator, OptimizerEMAState
from cxrbench.kit.reference import ReferenceClassifier, ReferenceOptions
from cxrbench.kit.presets import (
    NOT_FIT,
    RUNTIME,
    RUNTIME_KEYS,
    SAMPLING,
    LearnedOptions,
    check_learned_config,
    config_hash,
    explicit_options,
    resolve_config,
)
from cxrbench.kit.prep import fit_image
from cxrbench.kit.runtime import autocast, bar, progress_enabled, resolve_device

__all__ = [
    # presets
    "NOT_FIT",
    "RUNTIME",
    "RUNTIME_KEYS",
    "SAMPLING",
    "LearnedOptions",
    "check_learned_config",
    "config_hash",
    "explicit_options",
    "resolve_config",
    # conditioning
    "ConditionEncoder",
    "age_value",
    "is_missing",
    "race_value",
    "sex_value",
    # checkpoints
    "atomic_write",
    "load_tensor_files",
    "load_tensors",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_checkpoint_config",
    "read_json",
    "read_training_state",
    "read_weights",
    "save_tensors",
    "write_json",
    "write_training_checkpoint",
    "write_weights",
    # ema
    "EMA",
    # images
    "count_parameters",
    "data_fingerprint",
    "equalize_hist",
    "from_model_range",
    "padded_chunks",
    "peak_memory_mb",
    "resize_uint8",
    "seed_generator",
    "step_generator",
    "to_model_range",
    # learned
    "LearnedGenerator",
    "OptimizerEMAState",
    # reference
    "ReferenceClassifier",
    "ReferenceOptions",
    # datasets
    "CarvedValidationOptions",
    "FolderDataset",
    "carve_validation",
    "default_cache_dir",
    "find_dataset_dir",
    "read_image_file",
    "read_table",
    "split_by_patient",
    # prep
    "fit_image",
    # runtime
    "autocast",
    "bar",
    "progress_enabled",
    "resolve_device",
]
