"""The error types descent raises on purpose.

:class:`DescentError` is the base of every error reported in one line;
:class:`InputError` is bad input from the user: a value outside what is accepted, a file that is
not what it claims to be, an option the command does not take. Its message is one sentence that
names the value (and the file, line or setting where it came from) and says what is accepted. The
``descent`` command prints it as one line and exits with status 2. Any other exception escaping
descent's own code (a TypeError, KeyError, RuntimeError …) is a bug and is shown as one: exit
status 1, with a hint to rerun with ``--debug`` for the traceback.

``InputError`` subclasses :class:`ValueError`, so code written against the earlier ``ValueError``
keeps working.
"""

from __future__ import annotations


class DescentError(Exception):
    """An error descent reports to the user in one line rather than as a bug: bad input, or a run
    that cannot go on (a diverged loss). The CLI exits with status 2 on any of them."""


class InputError(DescentError, ValueError):
    """Bad input from the user: one sentence naming the value and what is accepted."""
