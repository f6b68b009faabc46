"""The one YAML reader and writer of descent (configs, search spaces, study records).

PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a string while ``1.0e-3`` is a float; people
write learning rates the first way, so the loader adds a resolver that reads every decimal number
in scientific notation as a float. Errors name the file and say what is wrong in one line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from descent.errors import InputError


class _Loader(yaml.SafeLoader):
    """SafeLoader with floats such as ``1e-3``, ``5E+2`` and ``.5e1`` read as numbers."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def loads(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; ``source`` names it in the error message."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise InputError(f"{source}: not valid YAML ({' '.join(str(error).split())})") from None


def load(path: str | Path, kind: str = "YAML") -> Any:
    """A YAML file's content; ``kind`` says what the file is ("config", "search space") in the
    one-line errors for a missing, unreadable, non-UTF-8 or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {kind} file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: the {kind} file is not UTF-8 text (byte {error.start}: {error.reason})"
        ) from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the {kind} file ({error.strerror})") from None
    return loads(text, str(path))


def dumps(data: Any) -> str:
    """YAML text for plain data, keys in their given order."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
