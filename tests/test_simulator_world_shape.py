"""The large académie's world of the benchmark: ``simulate --demarches`` and ``--files-per-dossier``."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter

import pytest
from click.testing import CliRunner

from connector.cli import cli
from connector.simulator.demarches import CRETEIL, OCCITANIE, POITIERS
from connector.simulator.seed import seed_world
from connector.simulator.state import file_content
from connector.simulator.worlds import add_messagerie_files


def test_shares_weigh_the_demarches_and_the_default_world_is_unchanged():
    world = seed_world(seed=5, dossiers=2000, shares=(4, 3, 1.5))
    counts = Counter(d.demarche_number for d in world.dossiers.values())
    assert counts[OCCITANIE] > counts[POITIERS] > counts[CRETEIL]
    assert abs(counts[OCCITANIE] / len(world.dossiers) - 4 / 8.5) < 0.05
    default, same = seed_world(seed=5, dossiers=300), seed_world(seed=5, dossiers=300, shares=None)
    assert [d.number for d in default.dossiers.values()] == [d.number for d in same.dossiers.values()]


def test_messagerie_files_reach_the_rate_asked_with_their_size_and_a_true_checksum():
    world = seed_world(seed=5, dossiers=300)
    before = {n: len(d.messages) for n, d in world.dossiers.items()}
    added = add_messagerie_files(world, 1.6, mean_kb=20)
    files = [f for d in world.dossiers.values() for m in d.messages for f in m.attachments]
    assert added > 0 and len(files) == round(1.6 * len(world.dossiers))
    grown = [d for n, d in world.dossiers.items() if len(d.messages) > before[n]]
    assert grown and all(d.depose_at is not None for d in grown)
    for d in grown[:20]:  # each new message is the dossier's latest event or before it, in order
        assert [m.created_at for m in d.messages] == sorted(m.created_at for m in d.messages)
        assert d.updated_at >= d.messages[-1].created_at
    new = [f for d in grown for m in d.messages for f in m.attachments if 10 * 1024 <= f.size <= 30 * 1024]
    assert len(new) >= added * 0.9
    f = new[0]
    assert base64.b64encode(hashlib.md5(file_content(f.key, f.size, f.content_type)).digest()).decode() \
        == f.checksum


@pytest.mark.parametrize("value", ["2000,1500", "a,b,c", "1,2,3,4,5", "0,0,0", "10,10,10,5000"])
def test_bad_demarche_sizes_are_refused_clearly(value):
    result = CliRunner().invoke(cli, ["simulate", "--demarches", value])
    assert result.exit_code == 2
    assert "--demarches" in result.output and "Traceback" not in result.output
