"""`ds-connector demo`, the README's first command, end to end in a subprocess."""

import json
import re
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

from connector.simulator import renewal
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
    incremental = re.search(r"3\. Incremental sync: .*\n.*", out.stdout).group(0)
    assert "3 new" in incremental and "1 deleted" in incremental and "1 to the trash" in incremental
    assert re.search(r"[1-9]\d* updated", incremental), incremental
    quiet = re.search(r"4\. Nothing new: .*\n.*", out.stdout).group(0)
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

    # 8. The renewal: the two planted campaigns' figures, before and after the cut-off, are the planted
    # truth's; the archived previous-year dossier is reported, not reminded.
    planted = seed_world(seed=SEED, dossiers=DOSSIERS, renewal=True)
    truth = renewal.truth(planted)
    count = Counter(r["status"] for r in truth["schools"].values())
    block = re.search(r"8\. Renewal .*?(?=\n\n)", out.stdout, re.S).group(0)
    assert (f"cut-off in 14 day(s): last year's schools: {count['renouvelee']} renouvelee, {count['en_attente']} "
            f"en_attente, {count['fermee']} fermee; new schools: {count['nouvelle']}") in block, block
    assert f"{len(truth['to_remind']) - 1} reminder(s)" in block
    assert len(truth["archived_previous_dossiers"]) == 1 and block.count("nothing — rien envoyé : dossier archivé") == 1
    assert (f"the cut-off passed: last year's schools: {count['renouvelee']} renouvelee, {count['en_attente']} "
            f"non_renouvelee, {count['fermee']} fermee") in block
    assert "checksum" not in out.stderr

    # status on the demo's mirror judges "overdue" by DS's clock as the runs saw it (the simulator's
    # clock, shown in step 5), not by this machine's date.
    shown_clock = re.search(r"DS clock (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", out.stdout).group(1)
    status = subprocess.run([sys.executable, "-m", "connector", "status", "--json", "--config",
                             str(tmp_path / "config.toml")], capture_output=True, text=True, timeout=60)
    s = json.loads(status.stdout)
    assert s["ds_clock"].replace("T", " ")[:16] == shown_clock
    ds_day = datetime.fromisoformat(s["ds_clock"]).astimezone(ZoneInfo("Europe/Paris")).date().isoformat()
    for d in s["demarches"]:
        overdue = db.execute("SELECT count(*) FROM conventions WHERE demarche_number = ? AND (status = 'overdue' OR "
                             "(status = 'awaiting' AND date(deadline) < date(?)))", [d["number"], ds_day]).fetchone()[0]
        assert (d["conventions"] or {}).get("overdue", 0) == overdue
    occitanie = next(d for d in s["demarches"] if d["conventions"] and d["conventions"]["awaiting"])
    by_machine = db.execute("SELECT count(*) FROM conventions WHERE demarche_number = ? AND (status = 'overdue' OR "
                            "(status = 'awaiting' AND date(deadline) < date('now')))", [occitanie["number"]]).fetchone()[0]
    if date.today().isoformat() > ds_day:  # the machine is later than the simulated DS: awaited ones past due
        assert occitanie["conventions"]["overdue"] < by_machine
