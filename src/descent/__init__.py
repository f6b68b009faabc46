"""descent: gradient descent end to end on PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("descent")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "curvature", "lr_find"]

#: Names served lazily from heavier modules, so that `import descent` does not import torch.
_LAZY = {
    "curvature": ("descent.diagnose.curvature", None),
    "lr_find": ("descent.diagnose.lr_find", "lr_find"),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'descent' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
