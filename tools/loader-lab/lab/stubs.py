"""Stand-in modules for what an app's loading code imports but does not use on the paths the
harness runs (UI, model cache, pydantic configs, ONNX, …). Each app lists the modules it stubs
and why (see STUBS in each app's runner); everything the harness measures runs the app's own
code. A stub module answers any attribute with a permissive placeholder class that can be
subclassed, called, used as a decorator, subscripted and iterated (empty).
"""
import abc
import importlib.abc
import importlib.machinery
import sys
import types


class _PlaceholderMeta(abc.ABCMeta):
    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return placeholder(name)

    def __getitem__(cls, item):
        return cls

    def __or__(cls, other):
        return cls

    def __ror__(cls, other):
        return cls

    def __iter__(cls):
        return iter(())


class Placeholder(metaclass=_PlaceholderMeta):
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return Placeholder()

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Placeholder()

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False


def placeholder(name):
    return _PlaceholderMeta(name, (Placeholder,), {})


def _decorator_factory(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


class StubModule(types.ModuleType):
    def __init__(self, name, attrs=None):
        super().__init__(name)
        self.__path__ = []  # a package: submodules are stubs too
        self.__stub__ = True
        for k, v in (attrs or {}).items():
            setattr(self, k, v)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = placeholder(name)
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, stubs):
        self.stubs = stubs  # name -> (reason, attrs)

    def _match(self, fullname):
        best = None
        for name in self.stubs:
            if (fullname == name or fullname.startswith(name + ".")) and (best is None or len(name) > len(best)):
                best = name
        return best

    def find_spec(self, fullname, path, target=None):
        if self._match(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        root = self._match(spec.name)
        attrs = self.stubs[root][1] if spec.name == root else {}
        parent, _, child = spec.name.rpartition(".")
        return StubModule(spec.name, attrs)

    def exec_module(self, module):
        pass


def install(stubs):
    """stubs: {module name: (reason, {attribute: value})}. Submodules of a stubbed name are stubs."""
    sys.meta_path.insert(0, _Finder(stubs))


decorator = _decorator_factory


def empty_package(name, path):
    """Register package `name` with its real directory but without running its __init__.py
    (used where an app's package init imports every sibling module, the whole app)."""
    mod = types.ModuleType(name)
    mod.__path__ = [path]
    mod.__package__ = name
    sys.modules[name] = mod
    return mod


class _NoBackend:
    """A device backend torch 1.13 lacks (torch.xpu, torch.mps): every function is a no-op that
    reports no device."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *a, **k: 0 if "count" in name else (False if name.startswith("is_") else None)


def torch_backends(*names):
    import torch

    for name in names:
        if not hasattr(torch, name):
            setattr(torch, name, _NoBackend())
