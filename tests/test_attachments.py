"""Attachments whatever their names (issue 10 §2): local names bounded in bytes and never confused
with the connector's own temporaries; a file that cannot be written here is an error the summary
and the exit code show.

The two hostile names of the issue, ``rapport.part`` and 130 × "é" + ".pdf", are posted through
the simulator's control surface as a usager would attach them, synced over HTTP into a real
SQLite file and a real download directory, and must survive the next syncs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from simworld import visible_dossiers
from syncenv import read_db, simulator_config, sync, sync_cli

from connector.errors import EX_CANTCREAT
from connector.sync.attachments import NAME_MAX, is_temporary, local_name, sweep, temporary_name

KEY = "f7-123"
LONG = "é" * 130 + ".pdf"  # 264 bytes in UTF-8: more than any Linux file system takes


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", [
    LONG, "rapport.part", "x" * 400, "x" * 400 + ".tar.gz", "ü" * 300, "日本語" * 40 + ".docx",
    "../../etc/passwd", "/etc/shadow", "a\nb\x00c\r.pdf", "CON", "nul.txt", ".bashrc", "  . ", "", "..",
    "fichier." + "e" * 40, "é" * 127 + "x" + "é" * 10 + ".pdf",
])
def test_local_names_are_bounded_in_bytes_and_safe(filename):
    name = local_name("annotation", KEY, filename)  # the longest owner kind
    encoded = name.encode("utf-8")  # also proves no character was cut in half
    assert len(encoded) <= NAME_MAX
    assert name.startswith("annotation-") and not name.startswith(".")
    assert not set(name) & {"/", "\x00", "\n", "\r"}
    assert Path(name).name == name and name not in (".", "..")
    assert not is_temporary(name)


def test_the_extension_is_kept_when_a_name_is_cut():
    name = local_name("message", KEY, LONG)  # 21 bytes of prefix, 115 é, .pdf
    assert name.endswith("é.pdf") and len(name.encode()) == NAME_MAX
    name = local_name("annotation", KEY, LONG)  # 24 bytes of prefix: 113 é (226 bytes), not half of a 114th
    assert name.endswith("é.pdf") and len(name.encode()) == NAME_MAX - 1
    assert local_name("message", KEY, "x" * 400 + ".tar.gz").endswith("x.gz")
    assert local_name("message", KEY, "rapport.part").endswith("-rapport.part")
    assert local_name("message", KEY, "convention signée.pdf").endswith("-convention signée.pdf")
    # an "extension" too long to be one is cut like the rest of the name
    assert len(local_name("message", KEY, "fichier." + "e" * 400).encode()) == NAME_MAX


def test_sanitising_of_traversal_absolute_control_and_empty_names_is_kept():
    assert local_name("message", KEY, "../../etc/passwd").endswith("-_.._etc_passwd")
    assert local_name("message", KEY, "rapport..pdf").endswith("-rapport..pdf")  # only a cut name loses dots
    assert local_name("message", KEY, "/etc/shadow").endswith("-_etc_shadow")
    assert local_name("message", KEY, "a\nb\x00c.pdf").endswith("-a_b_c.pdf")
    assert local_name("message", KEY, "").endswith("-fichier")
    assert local_name("message", KEY, " .. ").endswith("-fichier")


def test_temporaries_never_look_like_copies_and_copies_never_like_temporaries():
    temporary = temporary_name("message", KEY)
    assert is_temporary(temporary) and temporary.startswith(".message-")
    assert temporary != temporary_name("message", KEY)  # two downloads of one file never share one
    assert not any(is_temporary(local_name("message", KEY, n)) for n in (temporary, "x.part", ".dl-0000"))


def test_the_sweep_removes_temporaries_and_orphans_only(simulator, tmp_path):
    config = simulator_config(tmp_path, simulator, attachments="messages")
    sync(config)
    db = read_db(config)
    kept = [Path(p) for (p,) in db.execute("SELECT local_path FROM files WHERE local_path IS NOT NULL")]
    folder = kept[0].parent
    leftover = folder / temporary_name("message", KEY)
    orphan = folder / local_name("message", KEY, "rapport.pdf")  # a copy no row knows (a purge interrupted)
    legacy = folder / (kept[0].name + ".part")  # the naming of earlier versions
    theirs = [folder / "notes.txt", folder / ".part", folder / "rapport.part"]  # not ours: never touched
    for path in (leftover, orphan, legacy, *theirs):
        path.write_bytes(b"x")
    from connector.store.db import open_db

    assert sweep(open_db(config.database.path), config.sync.download_dir) == 3
    assert not leftover.exists() and not orphan.exists() and not legacy.exists()
    assert all(p.exists() for p in kept + theirs)


# --- end to end: hostile names, and files that cannot be written -------------------------------


def _post(simulator, number: int, filename: str, size: int = 5_000) -> str:
    """The usager sends a message with one attachment named ``filename``."""
    simulator.control("message", number=number, content_type="application/pdf", size=size, filename=filename)
    return filename


def _rows(config, number: int, names: list[str]) -> dict[str, dict]:
    """The mirror's files rows of the dossier, by file name (each one present)."""
    with read_db(config) as db:
        rows = {r["filename"]: dict(r) for r in db.execute("SELECT * FROM files WHERE dossier_number = ?", [number])}
    assert set(names) <= set(rows), sorted(rows)
    return {name: rows[name] for name in names}


def _posted(make_simulator, tmp_path, *filenames: str):
    """A 30-dossier simulator whose first visible dossier of its first démarche got one usager message
    per name, and a config mirroring that démarche with attachments "messages":
    (simulator, config, démarche, dossier number)."""
    simulator = make_simulator(dossiers=30)
    demarche = sorted(simulator.world.demarches)[0]
    number = visible_dossiers(simulator.world, demarche)[0].number
    for filename in filenames:
        _post(simulator, number, filename)
    return simulator, simulator_config(tmp_path, simulator, attachments="messages", demarches=[demarche]), \
        demarche, number


def _kept(rows: dict[str, dict]) -> dict[str, dict]:
    """The rows without what every read of a changed dossier renews: the URL DS just signed (its expiry
    counts in seconds) and when it was seen. The download columns stay."""
    return {name: {k: v for k, v in row.items() if k not in ("url", "url_seen_at")} for name, row in rows.items()}


def _check_on_disk(row: dict) -> Path:
    path = Path(row["local_path"])
    assert row["downloaded_at"] and row["checksum_ok"] == 1
    assert base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode() == row["checksum"]
    return path


def test_both_hostile_names_are_downloaded_kept_and_survive_later_syncs(make_simulator, tmp_path):
    keys = ["rapport.part", LONG]
    simulator, config, _, number = _posted(make_simulator, tmp_path, *keys)

    first = sync(config)
    assert first.status == "ok" and first.total("files_failed_local") == 0
    rows = _rows(config, number, keys)
    part, long = (_check_on_disk(rows[k]) for k in keys)
    assert part.name.endswith("-rapport.part") and long.name.endswith(".pdf")
    assert len(long.name.encode()) <= NAME_MAX and long.parent.name == str(number)

    # the next syncs, with something new to do and with nothing, full or not, keep both
    _post(simulator, number, "autre.pdf")
    for full in (False, False, True):
        report = sync(config, full=full)
        assert report.status == "ok"
        again = _rows(config, number, keys)
        assert [_check_on_disk(again[k]) for k in keys] == [part, long]
        assert _kept(again) == _kept(rows)  # never fetched again, never re-recorded (a sync in another
        # second than the first renews the URL of the changed dossier's files: not a refetch)
    result = sync_cli(config.path)
    assert result.returncode == 0 and "sync ok" in result.stdout
    assert part.exists() and long.exists()


def test_a_folder_that_cannot_be_created_fails_the_sync_with_exit_73_then_recovers(make_simulator, tmp_path):
    """A real local failure (no injection): a plain file sits where the dossier's folder must go."""
    key = "convention.pdf"
    _, config, demarche, number = _posted(make_simulator, tmp_path, key)
    blocker = config.sync.download_dir / str(demarche) / str(number)
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")

    result = sync_cli(config.path)
    assert result.returncode == EX_CANTCREAT, result.stdout[-2000:] + result.stderr
    *_, verdict, _, failed = result.stdout.strip().splitlines()
    assert verdict.startswith("sync partial: ") and failed.startswith("  1 file(s) NOT written here")  # tried once
    assert "sync ok" not in result.stdout
    assert '"event": "sync.file_write_failed"' in result.stdout and "FileExistsError" not in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert _rows(config, number, [key])[key]["local_path"] is None  # not recorded: the next sync tries again
    with read_db(config) as db:
        assert db.execute("SELECT status FROM sync_runs ORDER BY id DESC").fetchone()[0] == "partial"

    blocker.unlink()
    result = sync_cli(config.path)
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-2].startswith("sync ok: ")
    _check_on_disk(_rows(config, number, [key])[key])


# A full disk at the file edge: every write into a download temporary fails with ENOSPC.
FULL_DISK = """
import errno, io, os, sys
import connector.sync.attachments as attachments

class Full(io.FileIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

def full_open(path, mode="r", *args, **kwargs):
    if attachments.is_temporary(os.path.basename(path)):
        return Full(path, mode.replace("b", ""))
    return open(path, mode, *args, **kwargs)

attachments.open = full_open
sys.argv = ["ds-connector", "sync", "--config", sys.argv[1]]
from connector.cli import main
main()
"""


def test_a_full_disk_fails_the_sync_with_exit_73_and_leaves_no_temporary(make_simulator, tmp_path):
    keys = ["rapport.part", LONG]
    _, config, _, number = _posted(make_simulator, tmp_path, *keys)
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(config.path)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == EX_CANTCREAT, result.stdout[-2000:] + result.stderr
    *_, verdict, _, failed = result.stdout.strip().splitlines()
    assert verdict.startswith("sync partial: ") and failed.startswith("  2 file(s) NOT written here")
    assert "ENOSPC" in result.stdout and "Traceback" not in result.stdout + result.stderr
    with read_db(config) as db:
        written = db.execute("SELECT count(*) FROM files WHERE local_path IS NOT NULL").fetchone()[0]
    assert written == 0 and all(r["local_path"] is None for r in _rows(config, number, keys).values())
    on_disk = [p for p in config.sync.download_dir.rglob("*") if p.is_file()]
    assert on_disk == []  # every temporary was removed on the spot

    result = sync_cli(config.path)  # the disk has room again
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    for row in _rows(config, number, keys).values():
        _check_on_disk(row)
