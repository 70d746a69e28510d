"""The five plugin contracts: Dataset, Generator, Postprocessor, Classifier, Segmenter.

Images cross every plugin boundary as one canonical type: a ``torch.uint8`` tensor of shape
(N, 1, H, W), grayscale, at the size the spec asks for. Plugins convert inside, never at the
boundary. torch is imported lazily so that importing this module (and therefore listing
plugins or validating a spec) stays cheap.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


@dataclass
class NoOptions:
    """Options dataclass of a plugin that takes none."""


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset, as its plugin describes it (before decoding).

    :param key: unique, stable id inside the dataset (usually the path relative to the root).
    :param split: ``train``, ``val`` or ``test``.
    :param labels: one value per label name: 1.0 positive, 0.0 negative, NaN unknown (an
        uncertain label at test time: it is masked out of that label's metric).
    :param patient_id: the patient; splits are patient-disjoint.
    :param metadata: sex / age / view / race when known (exposed as generator conditions).
    :param source: what :meth:`Dataset.read_image` needs to read it (a path, an index...).
    """

    key: str
    split: str
    labels: tuple[float, ...]
    patient_id: str
    source: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)
    has_mask: bool = False


class Dataset(abc.ABC):
    """A real chest X-ray dataset in the on-disk format its users download.

    The plugin only *describes* its images (:meth:`records`) and decodes one
    (:meth:`read_image`); the harness preprocesses, caches (memory-mapped, decode once),
    fingerprints and checks splits for patient leakage, identically for every dataset.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    label_names: ClassVar[tuple[str, ...]]
    #: metadata fields this dataset can provide, e.g. ("sex", "age", "view")
    metadata_fields: ClassVar[tuple[str, ...]] = ()
    #: False for datasets that need no files (embedded / simulated)
    needs_root: ClassVar[bool] = True
    #: the folder under the data root where this dataset is expected, for messages
    default_subdir: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, root: Path | None, options: Any = None):
        self.root = Path(root) if root is not None else None
        self.options = options if options is not None else self.Options()

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        """Raise ConfigError when ``options`` cannot work at ``size`` px; no file access (called by
        ``validate``, which may run where the data is not)."""

    @abc.abstractmethod
    def records(self) -> list[ImageRecord]:
        """Every image with its split, labels, patient id and metadata.

        Raise :class:`cxrbench.errors.DatasetError` naming the missing file or column and the
        expected layout when the data is missing or malformed.
        """

    @abc.abstractmethod
    def read_image(self, record: ImageRecord) -> np.ndarray:
        """Decode one image to a 2-D array (uint8 or uint16, any size, grayscale)."""

    def read_mask(self, record: ImageRecord) -> np.ndarray | None:
        """Decode the record's mask (2-D, nonzero = region) or None. Override if masks exist."""
        return None

    #: hints the harness sets before records(): the requested size (decoders may draft-decode
    #: to it) and the cache root (plugins may keep small side files there, e.g. DICOM headers)
    target_size: int | None = None
    cache_root: Path | None = None
    #: how the splits were made ({"val": "carved from train by patient, seed 0"}), recorded
    split_notes: dict = {}

    def fingerprint_extra(self) -> str:
        """Anything not visible in the records that determines the pixels (e.g. an npz name)."""
        return ""

    def describe_layout(self) -> str:
        """One line describing the expected on-disk layout, used in error messages."""
        return f"see the documentation of the {self.name!r} dataset"


@dataclass
class Split:
    """A decoded split. ``images`` uint8 (N, 1, H, W); ``labels`` float32 (N, L), NaN = masked."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    label_names: tuple[str, ...]
    patient_ids: list[str]
    keys: list[str]
    metadata: dict[str, list] = field(default_factory=dict)
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int]) -> Split:
        import torch

        idx = torch.as_tensor(list(indices), dtype=torch.long)
        il = idx.tolist()
        return Split(
            name=self.name,
            images=self.images[idx],
            labels=self.labels[idx],
            label_names=self.label_names,
            patient_ids=[self.patient_ids[i] for i in il],
            keys=[self.keys[i] for i in il],
            metadata={k: [v[i] for i in il] for k, v in self.metadata.items()},
            masks=None if self.masks is None else self.masks[idx],
        )


# --------------------------------------------------------------------------- generators


@dataclass(frozen=True)
class Condition:
    """What one synthetic image must show. A generator returns exactly one image per condition,
    and the same condition (seed included) always gives the same image.

    :param labels: label vector in the dataset's label order (1/0; NaN never appears here).
    :param seed: the seed of this image; unique per image and replica (see the manifest).
    :param demographics: e.g. ``{"sex": "F", "age": 63}``; empty when the dataset has none.
    :param mask: optional uint8 (1, H, W) tensor (segmentation / region conditioning).
    :param prompt: optional text prompt (text-conditioned generators).
    :param replica: which replica of the training set this image belongs to.
    """

    labels: tuple[float, ...]
    seed: int
    demographics: Mapping[str, Any] = field(default_factory=dict)
    mask: Any = None
    prompt: str | None = None
    replica: int = 0


@dataclass(frozen=True)
class GeneratorCapabilities:
    """What a generator can be conditioned on and how it must be prepared."""

    labels: bool = True
    demographics: bool = False
    mask: bool = False
    text: bool = False
    #: True when fit() learns something expensive: its checkpoint is then cached by content
    needs_training: bool = True
    #: False when no real image or label ever reaches the generator (a hosted image model, a
    #: pretrained model used as is): the runner never calls fit(), and a test set may then hold
    #: every image of a real dataset (``test: all``)
    sees_training_data: bool = True
    #: the resolution it generates natively (None: any requested size)
    native_size: int | None = None


class Generator(abc.ABC):
    """A synthetic chest X-ray generator.

    Lifecycle: ``__init__(options, size, device)`` -> ``fit(train)`` (only ever the real
    *train* split) or ``load(dir)`` -> ``generate(conditions)`` any number of times.
    ``save``/``load`` use safetensors (never pickle) plus a JSON config.
    """

    name: ClassVar[str]
    #: bump when ``fit`` changes: invalidates cached fitted generators (and their samples)
    version: ClassVar[str] = "1"
    #: bump when ``generate`` changes for the same fitted weights (a sampler fix, say):
    #: invalidates cached synthetic sets but keeps the fitted generator
    sampling_version: ClassVar[str] = "1"
    capabilities: ClassVar[GeneratorCapabilities] = GeneratorCapabilities()
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None, *, size: int = 64, device: str = "cpu"):
        self.options = options if options is not None else self.Options()
        self.size = int(size)
        self.device = device

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        """Raise :class:`~cxrbench.errors.ConfigError` (one line) when ``options`` cannot work
        at ``size`` px. Called by ``cxrbench validate`` and before any cell runs, so a spec
        that every run would fail is refused up front. Must be cheap: no torch import, no I/O.
        Default: nothing to check beyond the Options dataclass types."""

    def effective_options(self) -> dict[str, Any]:
        """Every option with the value this instance really uses (preset values resolved).
        Recorded with every result and part of the fitted-generator cache key (minus fields
        marked ``metadata={"sampling": True}`` or ``{"runtime": True}``). Default: the options
        as given."""
        return options_to_dict(self.options)

    @abc.abstractmethod
    def fit(self, train: Split, *, progress: bool = True) -> dict[str, Any]:
        """Fit on the real training split. Returns stats to record (e.g. train seconds).

        A fit is defined by its steps, not by wall time. A generator that stops early (a time
        budget) must say so: ``{"truncated": True, "steps": done, "steps_requested": asked}``;
        the runner then caches it under a key of its own and marks every result built on it."""

    @abc.abstractmethod
    def generate(self, conditions: Sequence[Condition]) -> torch.Tensor:
        """Return uint8 (len(conditions), 1, size, size), image i reproducible from conditions[i]."""

    def save(self, directory: Path) -> None:
        """Write the fitted state to ``directory`` (safetensors + JSON). Default: nothing."""

    def load(self, directory: Path) -> None:
        """Restore the state written by :meth:`save`. Default: nothing."""


@dataclass
class SyntheticBatch:
    """Synthetic images and the conditions they were made for (same length, same order)."""

    images: torch.Tensor
    conditions: list[Condition]

    def __post_init__(self) -> None:
        if int(self.images.shape[0]) != len(self.conditions):
            raise ValueError(
                f"{int(self.images.shape[0])} images for {len(self.conditions)} conditions"
            )


class Postprocessor(abc.ABC):
    """One step of the explicit, ordered post-processing chain (watermark crop, filter...).

    A step may change pixels or drop images (a filter), never reorder or relabel them.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = NoOptions
    #: True when the step learns from the real training split (a proxy-model filter): the
    #: runner then calls :meth:`prepare` with it before the first batch, and counts its
    #: patients among those that must not reach a test set
    needs_real_train: ClassVar[bool] = False
    #: True when it moves pixels (crops, resizes, pads): an image-mask pair would no longer
    #: align, so the segmentation task refuses it (until it can move the mask with the image)
    moves_pixels: ClassVar[bool] = False

    def __init__(self, options: Any = None, *, device: str = "cpu"):
        self.options = options if options is not None else self.Options()
        self.device = device
        #: what the last call did (counts, rates...), JSON-able; recorded with the cell
        self.stats: dict[str, Any] = {}

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        """Raise ConfigError when ``options`` cannot work at ``size`` px (see Generator)."""

    def prepare(self, train: Split, *, cache_dir: Path, progress: bool | None = None) -> dict[str, Any]:
        """Learn what the step needs from the real training split (only when
        ``needs_real_train``); cache it under ``cache_dir``. Returns stats to record."""
        return {}

    @abc.abstractmethod
    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        """Return the processed batch (uint8, (N', 1, H, W), N' <= N)."""


# --------------------------------------------------------------------------- classifiers


@dataclass
class BuiltClassifier:
    """A classifier ready to train: the module and where its initial weights came from."""

    module: Any  # torch.nn.Module taking float (N, 1, H, W) in [-1, 1], returning (N, L) logits
    weights: str  # "scratch" or e.g. "imagenet:/path/to/cache"


class Classifier(abc.ABC):
    """A classifier architecture. The harness trains it with the protocol's fixed recipe."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        """Raise ConfigError when ``options`` cannot work on ``size`` px inputs (e.g. too few
        pixels for the network's downsampling). Called by ``validate`` and before a run."""

    @abc.abstractmethod
    def build(self, num_labels: int, input_size: int, pretrained: bool) -> BuiltClassifier:
        """Build a one-input-channel model with ``num_labels`` logits."""


# --------------------------------------------------------------------------- segmenters


@dataclass
class BuiltSegmenter:
    """A segmenter ready to train: the module and where its initial weights came from."""

    #: torch.nn.Module taking float (N, 1, H, W) in [-1, 1], returning (N, num_classes, H, W) logits
    module: Any
    #: "scratch", or what was loaded and from where, e.g. "encoder:file:/path/resnet18.pth"
    weights: str


class Segmenter(abc.ABC):
    """A segmentation architecture (the model of the segmentation task). The harness trains it
    with the protocol's fixed recipe, as it trains a classifier.

    The module :meth:`build` returns takes the classifier's input, float (N, 1, H, W) images in
    [-1, 1] (uint8 mapped as ``x / 127.5 - 1``, :func:`cxrbench.kit.to_model_range`), and
    returns float per-pixel *logits* (N, num_classes, H, W) at the input's own size, for every
    size ``check_options`` accepts (pad and crop inside the module when the network needs a
    multiple of its stride). Channel c is the logit of mask class c, independent of the other
    channels: the harness trains with per-class BCE + soft Dice and predicts
    ``sigmoid(logit) >= 0.5``. The initial weights are drawn from torch's global RNG, so the
    same ``torch.manual_seed`` before ``build`` gives the same network.
    """

    name: ClassVar[str]
    #: bump when the architecture or its initialisation changes
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        """Raise ConfigError (one line) when ``options`` cannot work on ``size`` px inputs. Called
        by ``validate`` and before a run; cheap: no torch import, no file access."""

    @abc.abstractmethod
    def build(self, num_classes: int, size: int, pretrained: bool = False) -> BuiltSegmenter:
        """Build a one-input-channel model with ``num_classes`` logit maps at ``size`` px.

        ``pretrained=True`` loads weights only from local files or an existing cache (never a
        download at run time) and says which in :attr:`BuiltSegmenter.weights`; when none are
        there, raise a one-line :class:`~cxrbench.errors.ConfigError` naming what is missing.
        """


def options_to_dict(options: Any) -> dict[str, Any]:
    """Plugin options as a plain dict (for hashing and the results record)."""
    if dataclasses.is_dataclass(options):
        return dataclasses.asdict(options)
    return dict(options or {})
