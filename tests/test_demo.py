"""`ds-connector demo`, the README's first command, end to end in a subprocess."""

import re
import sqlite3
import stat
import subprocess
import sys

from connector.simulator.seed import seed_world
from simworld import visible_dossiers

SEED, DOSSIERS = 2026, 120


def test_demo_mirrors_the_three_demarches_then_follows_activity(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "connector", "demo", "--state-dir", str(tmp_path), "--seed", str(SEED),
         "--dossiers", str(DOSSIERS)],
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr

    # The full sync mirrors every dossier DS would list, démarche by démarche (computed from the
    # same seeded world with the listing rules written out in tests/simworld.py).
    world = seed_world(seed=SEED, dossiers=DOSSIERS)
    expected = {n: len(visible_dossiers(world, n)) for n in world.demarches}
    shown = {int(n): int(c) for n, c in re.findall(r"démarche (\d+): (\d+) dossiers in \d+ pages", out.stdout)}
    assert shown == expected, out.stdout
    assert 0 < sum(expected.values()) < DOSSIERS  # brouillons and hidden dossiers never show

    # The activity (3 deposits, a message, an edit, a decision, one dossier trashed, one purged)
    # comes back in the incremental sync, and a sync with nothing new changes nothing.
    incremental = re.search(r"3\. Incremental sync: .*", out.stdout).group(0)
    assert "3 new" in incremental and "1 deleted" in incremental and "1 to the trash" in incremental
    assert re.search(r"[1-9]\d* updated", incremental), incremental
    quiet = re.search(r"4\. Nothing new: .*", out.stdout).group(0)
    assert "0 new, 0 updated, 0 deleted, 0 to the trash" in quiet
    assert f"{3 * len(expected)} requests" in quiet  # one page of each stream per démarche

    db = sqlite3.connect(tmp_path / "ds-connector.sqlite")
    assert db.execute("SELECT count(*) FROM demarches").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM dossiers").fetchone()[0] == sum(expected.values()) + 3 - 1
    assert db.execute("SELECT count(*) FROM dossiers WHERE pending_deletion = 1").fetchone()[0] >= 1
    assert db.execute("SELECT count(*) FROM tombstones WHERE reason = 'instructeur_request'").fetchone()[0] >= 1
    assert db.execute("SELECT status FROM sync_runs").fetchall() == [("ok",)] * 3
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    token = (tmp_path / "ds-api-token").read_text().strip()
    assert stat.S_IMODE((tmp_path / "ds-api-token").stat().st_mode) == 0o600
    assert token not in out.stdout + out.stderr
    assert token not in (tmp_path / "config.toml").read_text()
    assert token.encode() not in (tmp_path / "ds-connector.sqlite").read_bytes()
    # the written config is valid and finds its token file
    check = subprocess.run(
        [sys.executable, "-m", "connector", "check-config", "--config", str(tmp_path / "config.toml")],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )
    assert check.returncode == 0, check.stderr
    assert token not in check.stdout + check.stderr
