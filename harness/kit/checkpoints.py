"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

The contract asks ``save(dir)`` / ``load(dir)`` never to use pickle (a checkpoint downloaded
from someone else must not run code). Here:

- :func:`save_tensors` / :func:`load_tensors`: a flat ``{name: tensor}`` dict (a module's
  ``state_dict()``) as one ``.safetensors`` file;
- :func:`write_json` / :func:`read_json`: configs and training state (tuples, paths and numpy
  or torch scalars are converted);
- :func:`optimizer_to_tensors` / :func:`optimizer_from_tensors`: an optimizer's state split
  into tensors plus JSON-able metadata, and put back together (resumable training);
- :func:`atomic_write`: every file is written to ``<name>.tmp`` and renamed into place, so a
  run killed mid-write leaves the previous file intact;
- the layout of a :class:`~cxrbench.kit.LearnedGenerator` checkpoint directory: weights
  (:func:`write_weights` / :func:`read_weights`), the saved config checked before loading
  (:func:`read_checkpoint_config`), and resumable training checkpoints
  (:func:`write_training_checkpoint` / :func:`read_training_state`, :func:`load_tensor_files`).

torch and safetensors are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from cxrbench.errors import ConfigError, PluginError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: the layout of a learned generator's checkpoint directory (bump the format when it changes)
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
TRAIN_STATE_FILE = "train_state.json"


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp)`` on a temporary path next to ``path``, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    writer(tmp)
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write a flat dict of tensors with safetensors (copies: shared storage is fine)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    # metadata={} with no tensors writes a header safetensors cannot read back (an optimizer
    # that has not stepped yet has no state): pass None when there is no metadata
    atomic_write(Path(path), lambda p: save_file(flat, str(p), metadata=dict(metadata) if metadata else None))


def load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a file written by :func:`save_tensors`, tensors placed on ``device``."""
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (atomically)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default)

    def _w(p: Path) -> None:
        p.write_text(text + "\n", encoding="utf-8")

    atomic_write(Path(path), _w)


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> Any:
    """Parse a JSON file (UTF-8)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def optimizer_to_tensors(optimizer: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (safetensors) and JSON-able metadata."""
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"param_groups": sd["param_groups"], "scalars": {}, "tensor_keys": {}}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
                meta["tensor_keys"].setdefault(str(idx), []).append(key)
            else:
                meta["scalars"].setdefault(str(idx), {})[key] = value
    return tensors, json.loads(json.dumps(meta, default=_json_default))


def optimizer_from_tensors(optimizer: Any, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Load into ``optimizer`` the state :func:`optimizer_to_tensors` split apart."""
    state: dict[int, dict[str, Any]] = {}
    for idx, keys in meta.get("tensor_keys", {}).items():
        state.setdefault(int(idx), {}).update({k: tensors[f"{idx}.{k}"] for k in keys})
    for idx, scalars in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = [dict(g) for g in meta["param_groups"]]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def write_weights(directory: Path, modules: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Write ``modules["model"]`` and ``modules["ema"]`` (torch modules) and the config JSON."""
    directory = Path(directory)
    save_tensors(directory / MODEL_FILE, modules["model"].state_dict())
    save_tensors(directory / EMA_FILE, modules["ema"].state_dict())
    write_json(directory / CONFIG_FILE, config)


def read_weights(directory: Path, modules: Mapping[str, Any], device: str = "cpu") -> None:
    """Load the weights :func:`write_weights` wrote into the same modules."""
    directory = Path(directory)
    modules["model"].load_state_dict(load_tensors(directory / MODEL_FILE, device))
    modules["ema"].load_state_dict(load_tensors(directory / EMA_FILE, device))


def read_checkpoint_config(directory: Path, generator: str) -> dict[str, Any]:
    """The config JSON of a saved generator; PluginError unless ``generator`` wrote it in a
    format this version reads."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise PluginError(f"{generator}: no {CONFIG_FILE} in {str(directory)!r}: not a saved {generator} generator")
    data = read_json(path)
    if data.get("generator") != generator:
        raise PluginError(f"{str(directory)!r} holds a {data.get('generator')!r} checkpoint, not {generator!r}")
    if int(data.get("format", 0)) > FORMAT_VERSION:
        raise PluginError(f"{generator}: checkpoint format {data.get('format')} is newer than this version reads")
    return data


def write_training_checkpoint(
    ckdir: Path,
    modules: Mapping[str, Any],
    config: Mapping[str, Any],
    extra: Mapping[str, Mapping[str, torch.Tensor]],
    state: Mapping[str, Any],
) -> None:
    """A resumable checkpoint: the weights (:func:`write_weights`), one ``<stem>.safetensors``
    per entry of ``extra`` (optimizers, a discriminator...) and the training ``state`` JSON."""
    ckdir = Path(ckdir)
    ckdir.mkdir(parents=True, exist_ok=True)
    write_weights(ckdir, modules, config)
    for stem, tensors in extra.items():
        save_tensors(ckdir / f"{stem}.safetensors", tensors)
    write_json(ckdir / TRAIN_STATE_FILE, dict(state))


def read_training_state(ckdir: Path, generator: str, *, data_fingerprint: str, weights_hash: str) -> dict[str, Any] | None:
    """The training state in ``ckdir`` (None: no checkpoint yet); ConfigError when it is a run
    on other training data or with another configuration (resuming it would mix the two)."""
    path = Path(ckdir) / TRAIN_STATE_FILE
    if not path.exists():
        return None
    state = read_json(path)
    if state.get("data_fingerprint") != data_fingerprint:
        raise ConfigError(
            f"{generator}: checkpoint_dir {str(ckdir)!r} holds a run on other training data; "
            "delete it or choose another checkpoint_dir"
        )
    if state.get("weights_hash") != weights_hash:
        raise ConfigError(
            f"{generator}: checkpoint_dir {str(ckdir)!r} holds a run with another "
            "configuration; delete it or choose another checkpoint_dir"
        )
    return state


def load_tensor_files(directory: Path, stems: Iterable[str], device: str = "cpu") -> dict[str, dict[str, torch.Tensor]]:
    """``{stem: tensors}`` of each ``<stem>.safetensors`` present in ``directory``."""
    paths = {stem: Path(directory) / f"{stem}.safetensors" for stem in stems}
    return {stem: load_tensors(p, device) for stem, p in paths.items() if p.exists()}
