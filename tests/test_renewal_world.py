"""The simulator's renewal world (opt-in): two Occitanie campaigns planted for the renewal from one
school year to the next, its truth read through the control surface, and worlds without the option
unchanged."""

from __future__ import annotations

from datetime import datetime

import pytest

from connector.simulator import renewal
from connector.simulator.seed import seed_world
from connector.simulator.state import PARIS


def test_the_renewal_campaigns_are_opt_in_and_leave_the_rest_of_the_world_unchanged():
    plain, planted = seed_world(7, 60), seed_world(7, 60, renewal=True)
    assert renewal.PREVIOUS not in plain.demarches and renewal.NEXT not in plain.demarches
    assert set(planted.demarches) == set(plain.demarches) | {renewal.PREVIOUS, renewal.NEXT}
    for number, d in plain.dossiers.items():
        other = planted.dossiers[number]
        assert (other.state, other.updated_at, other.anomalies) == (d.state, d.updated_at, d.anomalies)
    assert planted.demarches[renewal.PREVIOUS].state == "close"


def test_the_truth_covers_every_case_the_issue_names(make_simulator):
    sim = make_simulator(world=seed_world(7, 60, renewal=True))
    truth = sim.control("renewal/truth")
    statuses = {row["status"] for row in truth["schools"].values()}
    assert statuses == {"renouvelee", "en_attente", "fermee", "nouvelle"}
    assert any(row["changement_titulaire"] for row in truth["schools"].values())
    assert len(truth["archived_previous_dossiers"]) == 1
    openings = {row["ouverture"] for row in truth["schools"].values() if row["type"] == "nouvelle"}
    assert "2026-09-01" in openings and len(openings) >= 3  # la rentrée, and two filing days
    with pytest.raises(RuntimeError, match="cut-off"):
        sim.control("renewal/late")
    cutoff = datetime(2026, 10, 30, 9, 0, tzinfo=PARIS)
    sim.control("advance", seconds=(cutoff - sim.world.clock.now()).total_seconds() + 3 * 86400)
    after = sim.control("renewal/truth")
    assert "non_renouvelee" in {row["status"] for row in after["schools"].values()}
    number = sim.control("renewal/late")["number"]
    late = sim.control("renewal/truth")
    renewed_late = [u for u, row in late["schools"].items() if row["status"] == "renouvelee"
                    and row["ouverture"] != "2026-09-01"]
    assert len(renewed_late) == 2 and number in sim.world.dossiers


def test_a_world_without_the_campaigns_says_so(simulator):
    with pytest.raises(RuntimeError, match="no renewal campaigns"):
        simulator.control("renewal/truth")
