"""What a hostile file holds, for the tests that check descent refuses it and runs nothing."""

from __future__ import annotations

from pathlib import Path


class WritesMarker:
    """Unpickling this calls exec, which writes ``marker``: what a crafted checkpoint or data
    file would do. A test checks that descent refuses it and that the marker is not written."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))
