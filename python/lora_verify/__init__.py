"""lora-verify from Python: will an app load this FLUX LoRA, and the file it does load.

``check(path_or_bytes, app)`` answers what an app asks when a user installs a LoRA: what
the app's own loader does with the file (it loads it, drops named tensors, rejects it, or
it is not known) and, when it does not load it, the command or call that writes a file it
loads. ``convert(src, dst, for_app=app)`` writes that file and verifies it against the
input. The verdicts come from the profile table the ``lora-verify`` CLI uses (every report's
``loaders`` section), so the two always agree.

``compare``, ``verify`` and ``inspect`` give the CLI's JSON reports as dicts. Errors raise
``lora_verify.Error`` with the CLI's message and exit code (``.code``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Tuple, Union

from . import _core
from ._core import Error

__all__ = [
    "APPS", "CheckResult", "ConvertResult", "Error", "Lost", "__version__",
    "check", "compare", "convert", "cpu_level", "inspect", "verify",
]

__version__: str = _core.__version__

PathOrBytes = Union[str, "os.PathLike[str]", bytes]
Outcome = Literal["loads", "drops", "rejects", "unknown"]

#: The profiled apps, as ``check`` and ``convert`` take them (the CLI's ``--for`` names).
APPS: Tuple[str, ...] = tuple(name for name, _, _ in _core.apps())


@dataclass(frozen=True)
class Lost:
    """The share of one target's weight delta (and bias delta) an app does not apply:
    ‖ΔW_lost‖_F / ‖ΔW‖_F, from 0 (nothing lost) to 1 (all of it)."""

    target: str
    weight: float
    bias: float


@dataclass(frozen=True)
class CheckResult:
    """What one app does with a LoRA file, and what fixes it.

    ``outcome`` is ``"loads"`` (everything applied), ``"drops"`` (it loads, but ``tensors``
    are not applied; ``lost`` says how much of each target's delta that is), ``"rejects"``
    (the app refuses the file with ``message``; ``tensors`` are the ones that trigger it) or
    ``"unknown"`` (``unknown`` names the kinds of tensor whose treatment is not established).
    ``fix`` is the ``lora-verify`` command the CLI's report advises (``None`` when the file
    loads). ``form`` is the key style ``convert(path, dst, for_app=app)`` writes (``None``
    when no form is established for the app) and ``convertible`` is true when that file
    loads completely. For a file that does not load, ``fix_call`` is the same advice as a
    ``convert`` call (with ``drop_unsupported=True`` when no form takes every tensor;
    ``SOURCE_BYTES`` stands for bytes given to ``check``); ``None`` when nothing helps.
    """

    app: str
    app_display: str
    established: str
    outcome: Outcome
    message: str
    tensors: Tuple[str, ...]
    lost: Tuple[Lost, ...]
    unknown: Tuple[str, ...]
    fix: Optional[str]
    form: Optional[str]
    convertible: bool
    fix_call: Optional[str]

    @property
    def loads(self) -> bool:
        """True when the app applies every tensor of the file."""
        return self.outcome == "loads"


@dataclass(frozen=True)
class ConvertResult:
    """A file ``convert`` wrote and verified: ``outcome`` is the app's verdict on it
    (``"loads"`` unless tensors were left out or a treatment is not established),
    ``dropped`` the tensors ``drop_unsupported=True`` left out, ``report`` the CLI's JSON
    report of ``lora-verify convert SRC -o DST --for APP``."""

    output: str
    app: str
    outcome: Outcome
    message: str
    dropped: Tuple[str, ...]
    report: Dict[str, Any]


def _output_name(source: PathOrBytes, app: str) -> str:
    stem = os.path.basename(os.fspath(source)) if not isinstance(source, bytes) else "lora.safetensors"
    if stem.endswith(".safetensors"):
        stem = stem[: -len(".safetensors")]
    return f"{stem or 'lora'}.{app}.safetensors"


def check(path_or_bytes: PathOrBytes, app: str, *, model: Optional[str] = None) -> CheckResult:
    """What ``app`` (one of ``APPS``) does with the LoRA at ``path_or_bytes`` (a path, or the
    bytes of a safetensors file), as the CLI's report says it.

    ``model`` names the model family when the file alone does not settle it (the CLI's
    ``--model``: ``"flux1"``, ``"chroma"``, ``"flux2-dev"`` …). Raises ``Error``: code 64
    for an unknown app or model, 65 when the file is not a safetensors FLUX LoRA, 66 when it
    cannot be opened.
    """
    row = _core.check(path_or_bytes, app, model)
    seen = row["input"]
    fix_call = None
    command = row.get("command")
    if seen["outcome"] != "loads" and command:
        # The command the CLI advises (its form as it is, or without what the app cannot
        # take), as a call; none where that form's verdict is unknown or it is refused.
        src = "SOURCE_BYTES" if isinstance(path_or_bytes, bytes) else repr(os.fspath(path_or_bytes))
        extra = ", drop_unsupported=True" if "--drop-unsupported" in command else ""
        extra += f", model={model!r}" if model else ""
        fix_call = f"lora_verify.convert({src}, {_output_name(path_or_bytes, app)!r}, for_app={app!r}{extra})"
    return CheckResult(
        app=row["loader"], app_display=row["display"], established=row["established"],
        outcome=seen["outcome"], message=seen["message"], tensors=tuple(seen["dropped"]),
        lost=tuple(Lost(l["target"], l["weight"], l["bias"]) for l in seen["lost"]),
        unknown=tuple(seen["unknown"]), fix=row.get("advice"), form=row["form"],
        convertible=row["form_outcome"] == "loads", fix_call=fix_call)


def convert(source: PathOrBytes, output: Union[str, "os.PathLike[str]"], *, for_app: str,
            drop_unsupported: bool = False, allow_unknown: bool = False, model: Optional[str] = None,
            threads: int = 2) -> ConvertResult:
    """Writes the form of ``source`` that ``for_app`` loads to ``output``, re-reads it and
    verifies it against ``source``: ``lora-verify convert SOURCE -o OUTPUT --for APP``.

    Tensors the app cannot take in any form it reads are refused (``Error`` code 65, each
    named) unless ``drop_unsupported`` leaves them out (``ConvertResult.dropped``; the
    report gives the share of each target's delta that is lost). A failed verification
    raises ``Error`` with code 1 and the report in ``.report``. ``output`` is written
    atomically and never over ``source``. A file the app rejects in every form is refused
    (code 65), and so is one whose verdict for the app is not established, unless
    ``allow_unknown`` (``--allow-unknown``).
    """
    report = _core.convert(source, output, for_app, drop_unsupported, allow_unknown, model, threads)
    row = next(l for l in report["loaders"] if l["loader"] == for_app)
    seen = row.get("output", row["input"])
    return ConvertResult(
        output=os.fspath(output), app=for_app, outcome=seen["outcome"], message=seen["message"],
        dropped=tuple(d["tensor"] for d in report.get("dropped_for_loader", [])), report=report)


def compare(source: PathOrBytes, converted: PathOrBytes) -> Dict[str, Any]:
    """Checks a conversion made by any tool: the JSON report of ``lora-verify compare`` as a
    dict (``report["verdict"]`` is ``"pass"`` or ``"fail"``)."""
    return _core.compare(source, converted)


def verify(path_or_bytes: PathOrBytes) -> Dict[str, Any]:
    """Converts in memory to the other layout, re-reads and verifies: the JSON report of
    ``lora-verify IN`` as a dict."""
    return _core.verify(path_or_bytes)


def inspect(path_or_bytes: PathOrBytes) -> Dict[str, Any]:
    """Container, metadata, dtypes, dialect, modules and every app's verdict: the JSON of
    ``lora-verify inspect --json`` as a dict."""
    return _core.inspect(path_or_bytes)


def cpu_level() -> str:
    """The CPU level the numerical kernels run at here: ``"x86-64"``, ``"x86-64-v3"``
    (AVX2/FMA), ``"x86-64-v4"`` (AVX-512), or ``"generic"`` off x86-64."""
    return _core.cpu_level()
