"""The hooks of a page read the page's own rows from memory (``connector.store.written``): what they
get must be exactly what SQLite gives back once the page is written, for every dossier of three
seeded démarches (repetitions, checkboxes, every champ type the seed fills), for new and updated
dossiers (a pending-deletion flag cleared by the page), with and without the role filter."""

from __future__ import annotations

import copy

from connector.store import open_db
from connector.store.door import enter
from connector.store.followup import dossier_facts
from connector.store.forms import champs_by_dossier, dossier_rows
from connector.store.written import recall
from syncenv import remote_dossiers


def _reads(db, numbers: list[int], wanted: set[str], current: set[str]) -> dict:
    return {
        "rows": dossier_rows(db, numbers),
        "champs": champs_by_dossier(db, numbers),
        "annotations": champs_by_dossier(db, numbers, private=True),
        "filtered": champs_by_dossier(db, numbers, False, wanted, current),
        "filtered_private": champs_by_dossier(db, numbers, True, wanted, current),
        "facts": dossier_facts(db, numbers),
    }


def test_hooks_read_from_memory_exactly_what_sqlite_gives_back(make_simulator, tmp_path):
    sim = make_simulator(seed=11, dossiers=150)
    db = open_db(tmp_path / "mirror.sqlite")
    for demarche in sorted(sim.world.demarches):
        nodes = remote_dossiers(sim, demarche)
        ids = sorted({c["champDescriptorId"] for n in nodes.values() for c in n["champs"] + n["annotations"]
                      if c.get("champDescriptorId")})
        assert len(ids) >= 4, demarche
        wanted, current = set(ids[::3]), set(ids[: len(ids) // 2])  # some wanted, some of another revision
        seen: list[dict] = []

        def hook(db, dem, numbers):
            assert recall(db, numbers) is not None  # answered from the page, not from SQLite
            seen.append(_reads(db, numbers, wanted, current))

        numbers = sorted(nodes)
        enter(db, demarche, list(nodes.values()), hook=hook)
        assert recall(db, numbers) is None  # only while the hooks run
        assert seen and seen[-1] == _reads(db, numbers, wanted, current)
        assert any(len(rows) > 1 for rows in seen[-1]["champs"].values())

        # Updated dossiers, one of them flagged in DS's trash before: the page clears the flag.
        flagged = numbers[0]
        with db.atomic():
            db.conn.execute("UPDATE dossiers SET pending_deletion = 1, pending_deletion_date = '2026-10-01' "
                            "WHERE number = ?", [flagged])
        changed = []
        for number in numbers[:20]:
            node = copy.deepcopy(nodes[number])
            node["dateDerniereModification"] = "2030-01-01T00:00:00+01:00"
            for champ in node["champs"]:
                if champ["__typename"] == "CheckboxChamp":
                    champ["checked"] = not champ.get("checked")
                    champ["stringValue"] = "true" if champ["checked"] else "false"
            changed.append(node)
        enter(db, demarche, changed, hook=hook)
        assert seen[-1] == _reads(db, numbers[:20], wanted, current)
        assert seen[-1]["facts"][flagged]["pending_deletion"] == 0
