"""What the five contract kits share.

Every check is a plain function ``check_<what>(setup, tmp)`` that returns nothing when the
plugin keeps its contract and raises :class:`ContractViolation` (an ``AssertionError``) whose
message shows the actual value next to the expected one, or :class:`CheckSkipped` when the
check does not apply. The same functions run

* as tests: the ``<Kind>ContractTests`` classes call them, one test per check;
* from ``cxrbench check NAME`` (one PASS / FAIL / SKIP line per check);
* in part, as the pre-flight of ``cxrbench run`` (see ``cxrbench.checking``).

pytest is optional here: the classes only need it when they are collected as tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Sequence

try:  # only the test classes need pytest; `cxrbench check` and the pre-flight run without it
    import pytest as _pytest
except ImportError:  # pragma: no cover - pytest is in the [test] extra
    _pytest = None


class ContractViolation(AssertionError):
    """A plugin broke its contract; the message shows the actual and the expected value."""


class CheckSkipped(Exception):
    """The check does not apply to this plugin (the message says why)."""


def require(ok: Any, message: str) -> None:
    """Raise :class:`ContractViolation` with ``message`` unless ``ok`` (works under ``python -O``)."""
    if not ok:
        raise ContractViolation(message)


class CheckNotRun(CheckSkipped):
    """The check applies but could not run here (e.g. no data root): never a pass."""


def skip(reason: str) -> None:
    raise CheckSkipped(reason)


def not_checked(reason: str) -> None:
    raise CheckNotRun(reason)


def describe(value: Any) -> str:
    """A value as a failure message shows it: ``tensor torch.float32 (2, 1, 16, 16)``,
    ``ndarray float64 (40, 48)``, or the type and repr of anything else."""
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is not None and shape is not None:
        kind = "tensor" if type(value).__module__.startswith("torch") else type(value).__name__
        return f"{kind} {dtype} {tuple(shape)}"
    text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= 160 else text[:157] + "..."


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def build_options(cls: type, options: Any, where: str = "options") -> Any:
    """A plugin's options from a kit attribute: None (the plugin's defaults), a dict (checked
    strictly, as a spec's options are) or an Options instance (copied)."""
    if options is None:
        return None
    if isinstance(options, dict):
        from cxrbench.config import plugin_options

        return plugin_options(cls, options, where, cls.__name__)
    return dataclasses.replace(options) if dataclasses.is_dataclass(options) else options


def options_or_default(cls: type, options: Any) -> Any:
    """The options a plugin will really hold: ``options``, or its Options() defaults."""
    if options is not None:
        return options
    opts_cls = getattr(cls, "Options", None)
    return opts_cls() if opts_cls is not None else None


def require_bad_options_rejected(cls: type, bad_options: Any) -> None:
    """Each ``(options, size)`` of ``bad_options`` is refused with a one-line ConfigError, when
    the Options are built or by ``cls.check_options`` (so ``cxrbench validate`` refuses it)."""
    from cxrbench.errors import ConfigError

    if not bad_options:
        skip("no bad_options configured (a list of (options, size) the plugin must refuse)")
    for opts, size in bad_options:
        try:
            cls.check_options(options_or_default(cls, build_options(cls, opts)), size)
        except ConfigError as exc:
            require("\n" not in str(exc).strip(), f"the ConfigError for {opts!r} at {size} px is not one line: {exc!s}")
            continue
        except Exception as exc:  # noqa: BLE001
            raise ContractViolation(f"options {opts!r} at {size} px raised {one_line(exc)}; expected a ConfigError "
                                    "from the Options or check_options") from exc
        raise ContractViolation(f"options {opts!r} at {size} px were accepted; check_options must raise a ConfigError")


def check_name(fn: Callable) -> str:
    return fn.__name__.removeprefix("check_")


def check_doc(fn: Callable) -> str:
    """The first paragraph of a check's docstring, on one line: what it checks."""
    return " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())


def load_plugin_class(kind: str, name: str | None, cls: type | None, kit: str) -> type:
    """``cls`` when given, else the class registered as ``name`` (through the entry points)."""
    if cls is not None:
        return cls
    if not name:
        raise TypeError(f"{kit}: set {kind}_name or {kind}_class")
    from cxrbench.registry import get_plugins

    return get_plugins().load(kind, name)


def fixture(*args: Any, **kwargs: Any) -> Any:
    """``pytest.fixture`` when pytest is installed, else a no-op decorator."""
    if _pytest is not None:
        return _pytest.fixture(*args, **kwargs)
    if args and callable(args[0]):
        return args[0]
    return lambda fn: fn


class ContractKit:
    """Base of the pytest kit classes: the plugin under test, one intra-op torch thread while a
    class runs, and :meth:`run_check`, which turns :class:`CheckSkipped` into a pytest skip.

    A kit class names its plugin kind, ``class ClassifierContractTests(ContractKit,
    kind="classifier")``, and so has the attributes a test class sets: ``<kind>_name`` (the
    registered name, looked up through the entry points) or ``<kind>_class`` (the class itself;
    it takes precedence and needs no install), and ``<kind>_options`` (a dict, checked strictly
    like a spec's, an Options instance, or None for the plugin's defaults); all None by default."""

    #: the plugin kind under test ("classifier", "dataset", "generator", "postprocessor" or "segmenter")
    kind: ClassVar[str] = ""

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            cls.kind = kind
            for attr in ("name", "class", "options"):
                setattr(cls, f"{kind}_{attr}", None)

    @classmethod
    def plugin_class(cls) -> type:
        """The class under test: ``<kind>_class``, else the one registered as ``<kind>_name``."""
        return load_plugin_class(cls.kind, getattr(cls, f"{cls.kind}_name"), getattr(cls, f"{cls.kind}_class"),
                                 cls.__name__)

    @classmethod
    def plugin_options(cls) -> Any:
        """``<kind>_options`` as the test class set it."""
        return getattr(cls, f"{cls.kind}_options")

    #: torch intra-op threads while the class runs (None = leave as is). One thread keeps tiny
    #: models fast on shared CI runners: with several threads, a busy machine makes every small
    #: op wait for a descheduled thread (measured: 0.16 s -> 5.6 s per GAN step on 2 busy cores).
    torch_threads: ClassVar[int | None] = 1

    @fixture(scope="class", autouse=True)
    @classmethod
    def _torch_threads(cls):
        if cls.torch_threads is None:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(cls.torch_threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @staticmethod
    def run_check(fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except CheckSkipped as exc:
            import pytest

            pytest.skip(str(exc))


def add_check_tests(kit: type, checks: Sequence[Callable], *, needs_data_root: bool = False) -> None:
    """Give the pytest kit class ``kit`` one test per check, ``test_<what>``, in ``checks``
    order, so a check added to a kind's ``CHECKS`` is a test at once (a method the class
    defines itself is kept). Each runs the check on ``kit.kit_setup()``; with
    ``needs_data_root`` (the dataset kit) on ``kit_setup(dataset_root, tmp_path)``, the
    ``dataset_root`` fixture being the kit's."""
    for check in checks:
        name = f"test_{check_name(check)}"
        if name not in kit.__dict__:
            setattr(kit, name, _root_test(check) if needs_data_root else _test(check))


def _test(check: Callable) -> Callable:
    def test(self, tmp_path):
        self.run_check(check, self.kit_setup(), tmp_path)

    return _named(test, check)


def _root_test(check: Callable) -> Callable:
    def test(self, dataset_root, tmp_path):
        self.run_check(check, self.kit_setup(dataset_root, tmp_path), tmp_path)

    return _named(test, check)


def _named(test: Callable, check: Callable) -> Callable:
    test.__name__ = test.__qualname__ = f"test_{check_name(check)}"
    test.__doc__ = check_doc(check)
    return test
