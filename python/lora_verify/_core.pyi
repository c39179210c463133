# Types of the compiled module lora_verify._core (python/core.cpp). Use the lora_verify package.
import os
from typing import Any, Dict, List, Optional, Tuple, Union

_PathOrBytes = Union[str, os.PathLike[str], bytes]

__version__: str

class Error(Exception):
    """A lora-verify error with the CLI's message and exit code."""

    code: int
    message: str
    report: Optional[Dict[str, Any]]

def compare(source: _PathOrBytes, converted: _PathOrBytes) -> Dict[str, Any]: ...
def verify(path: _PathOrBytes) -> Dict[str, Any]: ...
def inspect(path: _PathOrBytes) -> Dict[str, Any]: ...
def check(path: _PathOrBytes, app: str, model: Optional[str] = ...) -> Dict[str, Any]: ...
def convert(
    source: _PathOrBytes,
    output: Union[str, os.PathLike[str]],
    for_app: str,
    drop_unsupported: bool = ...,
    allow_unknown: bool = ...,
    model: Optional[str] = ...,
    threads: int = ...,
) -> Dict[str, Any]: ...
def apps() -> List[Tuple[str, str, str]]: ...
def cpu_level() -> str: ...
