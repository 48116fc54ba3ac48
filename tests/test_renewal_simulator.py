"""The renewal on the simulator's two Occitanie campaigns: ``renouvellements`` agrees with the planted
truth for every school (renewed, pending, not renewed, closed, new; change of holder; opening date),
before the cut-off, after it (the simulator's clock moved, no dossier changed), and after a commune
files late; the exports and ``status`` show it, ``status`` counting days and communes at DS's clock
(the simulator's), never at this machine's."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta

from connector.followup.renewal_refresh import RenewalHooks
from connector.simulator import renewal
from connector.simulator.seed import seed_world
from connector.simulator.state import PARIS
from connector.store.db import open_db
from followup_env import paris_at, sync_and_refresh
from renewal_env import agreement, renewal_config, table


def _check(config, sim, label):
    truth = sim.control("renewal/truth")
    per, wrong = agreement(config, truth)
    print(f"{label}: " + ", ".join(f"{s} {ok}/{n}" for s, (n, ok) in sorted(per.items())))
    assert wrong == [], wrong
    return truth


def _cli(config, *args):
    return subprocess.run([sys.executable, "-m", "connector.cli", *args, "--config", str(config.path)],
                          capture_output=True, text=True, timeout=300)


def _paris_day(at: datetime) -> date:
    return at.astimezone(PARIS).date()


def _status_pair(config, sim) -> dict:
    """``status --json``'s renewal figures, checked to be counted at DS's clock (the simulator's day,
    which differs from this machine's): days to the 29 October cut-off from DS's Paris day."""
    result = _cli(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    ds_day = _paris_day(datetime.fromisoformat(status["ds_clock"]))
    assert ds_day == _paris_day(sim.world.clock.now()) != datetime.now(PARIS).date()
    [pair] = status["renewals"]
    assert pair["days_to_cutoff"] == (date(2026, 10, 29) - ds_day).days
    return pair


def test_every_school_agrees_with_the_truth_before_and_after_the_cutoff(make_simulator, tmp_path):
    sim = make_simulator(world=seed_world(7, 60, renewal=True))
    if _paris_day(sim.world.clock.now()) == datetime.now(PARIS).date():
        # status counts at DS's clock, not this machine's: the two days must differ for the test to tell
        paris_at(sim.world, sim.world.clock.now() + timedelta(days=1), sim)
    config = renewal_config(tmp_path / "state", sim)
    first = sync_and_refresh(config)
    assert first.total("files") > 0 and first.total("files_failed") == 0  # the signed PDFs, checksums right
    truth = _check(config, sim, "before the cut-off")
    assert {r["status"] for r in truth["schools"].values()} == {"renouvelee", "en_attente", "fermee", "nouvelle"}
    holders = [u for u, r in table(config).items() if r["changement_titulaire"]]
    assert len(holders) == 3

    export = _cli(config, "export", "renouvellements", "--format", "json")
    assert export.returncode == 0, export.stderr
    rows = json.loads(export.stdout)
    assert {r["uai"] for r in rows} == {u for u, r in truth["schools"].items() if r["status"] != "nouvelle"}
    openings = _cli(config, "export", "ouvertures", "--format", "json", "--demarche", str(renewal.NEXT))
    assert openings.returncode == 0, openings.stderr
    opened = json.loads(openings.stdout)
    assert len(opened) >= 6  # the dossiers whose signed convention is in (the others open once it is)
    for r in opened:
        want = truth["schools"][r["uai"]]
        assert (r["type"], r["date_ouverture"]) == (want["type"], want["ouverture"]), r
    pair = _status_pair(config, sim)
    assert (pair["demarche"], pair["previous"]) == (renewal.NEXT, renewal.PREVIOUS)
    for status in ("renouvelee", "en_attente", "fermee", "nouvelle"):
        assert pair["schools"][status] == sum(r["status"] == status for r in truth["schools"].values())
    # Communes: A, B, K renewed (G is new); C, D, E, F, H, J not yet (E and F: their schools went to G),
    # pending at DS's clock (before the cut-off), whatever this machine's date.
    assert pair["communes"] == {"renewed": 3, "pending": 6, "not_renewed": 0}

    paris_at(sim.world, datetime(2026, 10, 30, 8, 0, tzinfo=PARIS), sim)
    sync_and_refresh(config)  # no dossier changed: the cut-off alone moves the statuses
    truth = _check(config, sim, "after the cut-off")
    pair = _status_pair(config, sim)
    assert pair["days_to_cutoff"] == -1 and pair["communes"] == {"renewed": 3, "pending": 0, "not_renewed": 6}
    closing = _cli(config, "export", "fermetures", "--format", "json", "--demarche", str(renewal.NEXT))
    assert closing.returncode == 0, closing.stderr
    reasons = {r["uai"]: r.get("motif") for r in json.loads(closing.stdout)}
    for uai, r in truth["schools"].items():
        if r["status"] == "non_renouvelee":
            assert reasons[uai] == "non renouvelée au 29 octobre 2026"

    # A page of old dossiers saved again (a full reconciliation): the mirror's newest DS timestamp is
    # before the cut-off, but time does not go back.
    db = open_db(config.database.path)
    try:
        with db.atomic():
            previous = [n for n, d in sim.world.dossiers.items() if d.demarche_number == renewal.PREVIOUS]
            RenewalHooks(config).dossiers_changed(db, renewal.PREVIOUS, previous)
    finally:
        db.conn.close()
    _check(config, sim, "after the cut-off, old pages saved again")
    prometheus = _cli(config, "status", "--format", "prometheus")
    count = sum(r["status"] == "non_renouvelee" for r in truth["schools"].values())
    assert (f'ds_connector_renewal_schools{{demarche="{renewal.NEXT}",previous="{renewal.PREVIOUS}",'
            f'status="non_renouvelee"}} {count}') in prometheus.stdout, prometheus.stdout

    paris_at(sim.world, datetime(2026, 11, 1, 10, 0, tzinfo=PARIS), sim)
    sim.control("renewal/late")
    sync_and_refresh(config)
    _check(config, sim, "after the late filing")
