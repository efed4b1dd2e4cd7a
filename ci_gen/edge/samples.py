"""The samples edge-convert measures with, from the project's own loader.

The loader is a function `MODULE:FUNCTION` of the project (imported from the working
directory) called as `FUNCTION("train")` and `FUNCTION("test")`; each call returns
`(inputs, labels)`: inputs as the SavedModel's serving signature takes them, one integer
class label per sample. ci-gen knows nothing of the data format; the project does.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Callable

from ci_gen.errors import CiGenError, UsageError, shown
from ci_gen.patterns import RE_LOADER

SEED = 0  # the representative set is the same draw on every run


def check_spec(spec: str) -> None:
    if not re.fullmatch(RE_LOADER, spec):
        raise UsageError(f"edge-convert: --loader {shown(spec)} is not MODULE:FUNCTION")


def load_loader(spec: str, root: Path) -> Callable[[str], Any]:
    """The function named by `spec` (MODULE:FUNCTION), imported with ROOT first on sys.path."""
    check_spec(spec)
    module_name, func_name = spec.split(":")
    sys.path.insert(0, str(root.resolve()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CiGenError(f"edge-convert: cannot import the loader module {module_name} "
                         f"from {root}: {exc}") from None
    finally:
        sys.path.pop(0)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise CiGenError(f"edge-convert: {module_name} has no function {func_name}")
    return func


def split(loader: Callable[[str], Any], name: str, spec: str) -> tuple[Any, Any]:
    """(inputs float32, labels int64) of one split, checked; a loader failure is one line."""
    import numpy as np

    try:
        got = loader(name)
        inputs, labels = got
    except CiGenError:
        raise
    except Exception as exc:  # noqa: BLE001 - the project's code: any failure is its message
        raise CiGenError(f"edge-convert: {spec}({name!r}) failed: {type(exc).__name__}: "
                         f"{_first_line(exc)}") from None
    inputs, labels = np.asarray(inputs), np.asarray(labels)
    if inputs.ndim == 0 or labels.ndim != 1 or len(inputs) != len(labels):
        raise CiGenError(f"edge-convert: {spec}({name!r}) must return (inputs, labels) with one "
                         f"integer label per sample; got shapes {inputs.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise CiGenError(f"edge-convert: {spec}({name!r}) returned {labels.dtype} labels; "
                         "expected integer class ids")
    return inputs.astype(np.float32), labels.astype(np.int64)


def representative(inputs: Any, size: int, spec: str) -> Any:
    """`size` training inputs drawn at random (fixed seed), for int8 calibration."""
    import numpy as np

    if len(inputs) == 0:
        raise CiGenError(f"edge-convert: the representative set is empty: {spec}('train') "
                         "returned no samples")
    if not np.isfinite(inputs).all():
        raise CiGenError(f"edge-convert: the representative set holds NaN or infinite values "
                         f"({spec}('train'))")
    rng = np.random.default_rng(SEED)
    picked = rng.choice(len(inputs), size=min(size, len(inputs)), replace=False)
    return inputs[np.sort(picked)]


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:300]
