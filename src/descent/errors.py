"""The error types descent raises on purpose.

:class:`InputError` is bad input from the user: a value outside what is accepted, a file that is
not what it claims to be, an option the command does not take. Its message is one sentence that
names the value (and the file, line or setting where it came from) and says what is accepted. The
``descent`` command prints it as one line and exits with status 2. Any other exception escaping
descent's own code is a bug and is shown as one.

``InputError`` subclasses :class:`ValueError`, so code written against the earlier ``ValueError``
keeps working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: one sentence naming the value and what is accepted."""
