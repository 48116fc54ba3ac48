"""Anomalies over time: fixed by the usager -> resolved (kept), back -> a new open row; a purged dossier
takes its schools and anomalies with it; the cross-dossier rules follow the dossiers' states; and the
``check`` and ``export`` commands as an operator types them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing

from connector.commands.hooks import sync_hooks
from connector.simulator import anomalies as A
from connector.simulator.demarches import OCCITANIE, POITIERS
from connector.simulator.seed import seed_world
from syncenv import read_db, simulator_config, sync

SIGNATURE = 3870132


def _rows(config, sql, *params):
    with closing(read_db(config)) as conn:
        return conn.execute(sql, params).fetchall()


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _planted(handle, fact, demarche=None):
    mirrored_states = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")
    return sorted(d.number for d in handle.world.dossiers.values()
                  if fact in d.anomalies and d.state in mirrored_states
                  and (demarche is None or d.demarche_number == demarche)
                  and not d.hidden_by_administration_at and not d.hidden_by_expired_at)


def test_an_anomaly_fixed_by_the_usager_is_resolved_not_deleted(make_simulator, tmp_path):
    handle = make_simulator(world=seed_world(seed=2026, dossiers=300))
    config = simulator_config(tmp_path, handle, demarches=[POITIERS])
    hooks = sync_hooks(config)
    assert sync(config, hooks=hooks).exit_code == 0
    number = _planted(handle, A.SIGNATURE_UNCHECKED, POITIERS)[0]
    [opened] = _rows(config, "SELECT * FROM anomalies WHERE dossier_number = ? AND code = 'signature_absente'", number)
    assert opened["resolved_at"] is None and "n'est pas cochée" in opened["message"]

    handle.control("champ", number=number, stable_id=SIGNATURE, value=True)
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    [resolved] = _rows(config, "SELECT * FROM anomalies WHERE dossier_number = ? AND code = 'signature_absente'",
                       number)
    assert resolved["id"] == opened["id"] and resolved["resolved_at"] is not None
    assert resolved["first_seen_at"] == opened["first_seen_at"]

    handle.control("champ", number=number, stable_id=SIGNATURE, value=False)
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    history = _rows(config, "SELECT * FROM anomalies WHERE dossier_number = ? AND code = 'signature_absente' "
                            "ORDER BY id", number)
    assert [r["resolved_at"] is None for r in history] == [False, True]

    # check without --full has nothing to do; --full re-evaluates every dossier and changes nothing.
    result = _cli("check", "--config", str(config.path))
    assert result.returncode == 0, result.stderr
    assert f"démarche {POITIERS}: profile poitiers (detected), 0 dossier(s) evaluated" in result.stdout
    result = _cli("check", "--full", "--config", str(config.path))
    assert result.returncode == 0 and "0 anomalies opened, 0 resolved" in result.stdout
    assert "signature_absente" in result.stdout and "case de signature" in result.stdout


def test_purged_dossiers_take_their_rows_and_cross_rules_follow_states(make_simulator, tmp_path):
    handle = make_simulator(world=seed_world(seed=2026, dossiers=300))
    config = simulator_config(tmp_path, handle, demarches=[OCCITANIE])
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    twice = _planted(handle, A.SIRET_TWICE, OCCITANIE)
    assert len(twice) == 2
    open_twice = {r["dossier_number"] for r in _rows(
        config, "SELECT dossier_number FROM anomalies WHERE code = 'collectivite_en_double' AND resolved_at IS NULL")}
    assert open_twice == set(twice)

    # One of the two is classé sans suite: the other is alone again (passer en instruction first: DS's rule).
    handle.control("state", number=twice[0], state="en_instruction")
    handle.control("state", number=twice[0], state="sans_suite", motivation="Doublon.")
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    assert not _rows(config, "SELECT * FROM anomalies WHERE code = 'collectivite_en_double' AND resolved_at IS NULL")
    assert len(_rows(config, "SELECT * FROM anomalies WHERE code = 'collectivite_en_double'")) == 2

    # Purged by DS: its form summary, schools and anomalies go with it.
    victim = twice[1]
    assert _rows(config, "SELECT * FROM ecoles WHERE dossier_number = ?", victim)
    handle.control("purge", number=victim, reason="instructeur_request")
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    for table in ("ecoles", "anomalies", "dossier_forms"):
        assert not _rows(config, f"SELECT * FROM {table} WHERE dossier_number = ?", victim), table


def test_export_and_check_from_the_command_line(make_simulator, tmp_path):
    handle = make_simulator(world=seed_world(seed=2026, dossiers=100))
    config = simulator_config(tmp_path, handle)
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    out = tmp_path / "out" / "ecoles.csv"
    result = _cli("export", "ecoles", "--config", str(config.path), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b'\xef\xbb\xbf"demarche";"dossier";"etat";')
    assert f"-> {out}" in result.stderr
    result = _cli("export", "anomalies", "--config", str(config.path), "--format", "json", "--demarche",
                  str(POITIERS))
    assert result.returncode == 0 and result.stdout.lstrip("\ufeff").startswith("[")
    assert '"demarche": 128905' in result.stdout and '"demarche": 131274' not in result.stdout

    result = _cli("export", "bills", "--config", str(config.path))
    assert result.returncode == 2 and "'bills' is not one of" in result.stderr
    result = _cli("check", "--config", str(config.path), "--demarche", "4")
    assert result.returncode == 78 and "not in" in result.stderr and "Traceback" not in result.stderr
    missing = tmp_path / "nowhere.toml"
    missing.write_text(config.path.read_text().replace('path = "ds-connector.sqlite"', 'path = "none.sqlite"'))
    result = _cli("export", "ouvertures", "--config", str(missing))
    assert result.returncode != 0 and "No database" in result.stderr and "Traceback" not in result.stderr


def test_cross_rules_run_again_only_when_what_they_read_changed(make_simulator, tmp_path):
    """A sync that changed nothing the cross rules read writes no anomaly; a dossier moved to DS's
    trash (no dossier page brings it) changes what they read, and its pair is alone again."""
    handle = make_simulator(world=seed_world(seed=2026, dossiers=300))
    config = simulator_config(tmp_path, handle, demarches=[OCCITANIE])
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    cross = "SELECT id, last_seen_at, resolved_at, message FROM anomalies " \
            "WHERE code IN ('collectivite_en_double', 'ecole_revendiquee') ORDER BY id"
    before = [tuple(r) for r in _rows(config, cross)]
    assert before and all(r[2] is None for r in before)
    [(fingerprint,)] = _rows(config, "SELECT cross_fingerprint FROM form_profiles WHERE demarche_number = ?",
                             OCCITANIE)
    assert fingerprint

    with closing(sqlite3.connect(config.database.path)) as conn, conn:  # a mark a rewrite would erase
        conn.execute("UPDATE anomalies SET last_seen_at = '2000-01-01T00:00:00+00:00' "
                     "WHERE code IN ('collectivite_en_double', 'ecole_revendiquee')")
    marked = [(i, "2000-01-01T00:00:00+00:00", resolved, message) for i, _, resolved, message in before]
    handle.control("touch", numbers=[_planted(handle, A.SIGNATORY_FORMAT, OCCITANIE)[0]])  # not a cross fact
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    assert [tuple(r) for r in _rows(config, cross)] == marked  # nothing rewritten

    twice = _planted(handle, A.SIRET_TWICE, OCCITANIE)
    handle.control("hide", number=twice[0], by="administration")
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    assert _rows(config, "SELECT pending_deletion FROM dossiers WHERE number = ?", twice[0])[0][0] == 1
    assert not _rows(config, "SELECT * FROM anomalies WHERE code = 'collectivite_en_double' AND resolved_at IS NULL")
    [(after,)] = _rows(config, "SELECT cross_fingerprint FROM form_profiles WHERE demarche_number = ?", OCCITANIE)
    assert after and after != fingerprint
