"""Files and directories readable by their owner only (0600/0700), whatever the process's umask.

The mirror holds personal data (mayors' names, e-mails, phones, signed conventions). The command line
runs with umask 0077 (``connector.cli``) and the systemd units say ``UMask=0077``; what the connector
creates beside the database also asks for these modes itself, so that a library caller with another
umask gets the same.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def makedirs(path: Path) -> None:
    """``mkdir -p`` where every directory created (not only the last) is 0700."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)  # exactly 0700, even under an odd umask (0o777 & ~umask)
