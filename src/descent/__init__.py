"""descent: gradient descent end to end on PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("descent")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
