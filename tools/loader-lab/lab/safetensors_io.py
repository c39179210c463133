"""A small safetensors reader and writer (torch tensors), installed as the `safetensors` and
`safetensors.torch` modules when Debian has no python3-safetensors.

Only what the apps' loading code calls: load_file, load, save_file, save, safe_open (keys,
get_tensor, metadata). The format: 8-byte little-endian header length, a JSON header naming
each tensor's dtype, shape and byte range, then the raw little-endian data.
"""
import importlib.machinery
import json
import os
import struct
import sys
import tempfile
import types

import torch

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return header, memoryview(data)[8 + n:]


def _tensors(header, body, device="cpu"):
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        raw = bytearray(body[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def load_file(path, device="cpu"):
    header, body = _read(path)
    return _tensors(header, body, device)


def load(data):
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return _tensors(header, memoryview(data)[8 + n:])


def read_metadata(path):
    header, _ = _read(path)
    return dict(header.get("__metadata__") or {})


def save(tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


def save_file(tensors, path, metadata=None):
    data = save(tensors, metadata)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)) or ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class SafetensorError(Exception):
    pass


class safe_open:  # noqa: N801 (the safetensors API's name)
    def __init__(self, path, framework="pt", device="cpu"):
        self._header, self._body = _read(path)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def keys(self):
        return [k for k in self._header if k != "__metadata__"]

    def metadata(self):
        return self._header.get("__metadata__")

    def get_tensor(self, name):
        return _tensors({name: self._header[name]}, self._body)[name]

    def get_slice(self, name):
        return self.get_tensor(name)


def install():
    """Register this module as `safetensors` / `safetensors.torch` unless the real one exists."""
    try:
        import safetensors.torch  # noqa: F401
        return False
    except ImportError:
        pass
    pkg = types.ModuleType("safetensors")
    pkg.__path__ = []
    pkg.__spec__ = importlib.machinery.ModuleSpec("safetensors", None, is_package=True)
    pkg.safe_open = safe_open
    pkg.SafetensorError = SafetensorError
    pkg.__version__ = "0.4.0"
    mod = types.ModuleType("safetensors.torch")
    mod.__spec__ = importlib.machinery.ModuleSpec("safetensors.torch", None)
    for name in ("load_file", "load", "save_file", "save", "safe_open"):
        setattr(mod, name, globals()[name])
    pkg.torch = mod
    sys.modules["safetensors"] = pkg
    sys.modules["safetensors.torch"] = mod
    return True
