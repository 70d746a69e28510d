"""Every hook cxrbench calls, in one module. Each docstring is the contract.

A plugin is a module (or object) with functions marked ``@cxrbench.hookimpl`` and is found
through the entry-point group ``cxrbench``::

    [project.entry-points.cxrbench]
    my-generators = "my_package.plugin"

The built-in plugins are registered through exactly this group, so they have no privileges a
third-party plugin lacks. Registration hooks receive a typed registry (as tox's
``tox_register_tox_env(register)``); they must not import heavy libraries (torch, diffusers,
timm): register a lazy ``"module:Class"`` reference instead, so `cxrbench plugins` stays fast.
Scores never depend on the order in which hooks are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

PROJECT_NAME = "cxrbench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from cxrbench.registry import (
        ClassifierRegistry,
        DatasetRegistry,
        GeneratorRegistry,
        PostprocessorRegistry,
        SegmenterRegistry,
    )


@hookspec
def cxrbench_register_generators(registry: GeneratorRegistry) -> None:
    """Register synthetic-image generators.

    :param registry: call ``registry.add(name, target, summary=...)`` once per generator.
        ``target`` is a subclass of :class:`cxrbench.contracts.Generator` or a lazy
        ``"package.module:ClassName"`` string (preferred: nothing heavy is imported until the
        generator is used).
    :return: nothing; the registry is the result. A name already registered by another plugin
        is an error that names both plugins.
    """


@hookspec
def cxrbench_register_postprocessors(registry: PostprocessorRegistry) -> None:
    """Register post-processors (steps of the ordered chain applied to synthetic images).

    :param registry: ``registry.add(name, target, summary=...)`` with ``target`` a subclass of
        :class:`cxrbench.contracts.Postprocessor` or a lazy ``"module:Class"`` string.
    :return: nothing.
    """


@hookspec
def cxrbench_register_classifiers(registry: ClassifierRegistry) -> None:
    """Register classifier architectures.

    :param registry: ``registry.add(name, target, summary=...)`` with ``target`` a subclass of
        :class:`cxrbench.contracts.Classifier` or a lazy ``"module:Class"`` string. The harness,
        not the plugin, trains the model with the protocol's fixed recipe.
    :return: nothing.
    """


@hookspec
def cxrbench_register_datasets(registry: DatasetRegistry) -> None:
    """Register real test datasets.

    :param registry: ``registry.add(name, target, summary=...)`` with ``target`` a subclass of
        :class:`cxrbench.contracts.Dataset` or a lazy ``"module:Class"`` string.
    :return: nothing.
    """


@hookspec
def cxrbench_register_segmenters(registry: SegmenterRegistry) -> None:
    """Register segmenter architectures (the model of the segmentation task).

    :param registry: ``registry.add(name, target, summary=...)`` with ``target`` a subclass of
        :class:`cxrbench.contracts.Segmenter` or a lazy ``"module:Class"`` string. ``build``
        returns a module mapping float (N, 1, size, size) images in [-1, 1] (the classifier's
        input) to per-pixel logits (N, num_classes, size, size) at the input size, one
        independent channel per mask class; the harness, not the plugin, trains it with the
        protocol's fixed recipe. Pretrained weights come only from local files or an existing
        cache, never from a download at run time.
    :return: nothing.
    """
