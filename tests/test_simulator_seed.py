"""The simulator's seeded world: deterministic, shaped like DS's data, anomalies at their documented rates."""

from __future__ import annotations

import base64
import hashlib
import random
from collections import Counter
from datetime import datetime, timedelta

import pytest

from connector.simulator import anomalies as A, forms, ident, referentiel
from connector.simulator.dates import add_months
from connector.simulator.seed import (
    CRETEIL, DEMARCHES, FIRST_DOSSIER_NUMBER, OCCITANIE, POITIERS, TECH_ACCOUNTS, make_dossier, make_usager_message,
    seed_world,
)
from connector.simulator.state import PARIS, SYSTEM_EMAIL, TERMINATED, UTC, Dossier, World, file_content


@pytest.fixture(scope="module")
def world() -> World:
    return seed_world(seed=7, dossiers=3000)


def _digest(world: World) -> str:
    """A digest of every record (repr of the slotted dataclasses: all their fields)."""
    h = hashlib.sha256()
    h.update(repr((world.clock.start, sorted(world.tokens.items()), world.instructeurs, world.next_ids)).encode())
    for number in sorted(world.demarches):
        h.update(repr(world.demarches[number]).encode())
    for number in sorted(world.dossiers):
        h.update(repr(world.dossiers[number]).encode())
    h.update(repr(world.deleted).encode())
    return h.hexdigest()


def _events(d: Dossier) -> list[datetime]:
    champs = [c for c in d.champs + d.annotations] + [c for c in d.champs for r in c.rows for c in r.champs]
    times = [d.created_at] + [m.created_at for m in d.messages] + [t.processed_at for t in d.traitements]
    times += [c.updated_at for c in champs if c.updated_at] + [
        t for t in (d.depose_at, d.hidden_by_user_at, d.hidden_by_administration_at, d.hidden_by_expired_at) if t]
    return times


def _deposited(world: World, number: int) -> list[Dossier]:
    return [d for d in world.dossiers.values() if d.demarche_number == number and d.state != "brouillon"]


def _rate(dossiers: list[Dossier], name: str) -> float:
    return sum(name in d.anomalies for d in dossiers) / len(dossiers)


def _school_uais(world: World) -> list[str]:
    """Every school entry's UAI as the API would show it (Occitanie multi-select, Poitiers and Créteil rows)."""
    out = []
    for d in world.dossiers.values():
        for c in d.champs:
            if c.type == "MultipleDropDownListChamp" and c.value:
                out += [v.rsplit("(", 1)[1].rstrip(")") for v in c.value]
            for row in c.rows:
                for cell in row.champs:
                    if cell.type == "DropDownListChamp" and cell.value:
                        out.append(cell.value.rsplit("(", 1)[1].rstrip(")"))
                    elif cell.type == "TextChamp" and cell.value:
                        out.append(cell.value.strip().upper())
    return out


def test_same_seed_same_world_and_other_seeds_differ():
    a, b, c = seed_world(seed=11, dossiers=150), seed_world(seed=11, dossiers=150), seed_world(seed=12, dossiers=150)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert list(a.tokens) != list(c.tokens)


def test_start_moves_the_whole_world_and_a_given_token_changes_nothing_else():
    later = datetime(2027, 3, 1, 8, 30, tzinfo=UTC)
    w = seed_world(seed=11, dossiers=60, start=later, token="dG9rZW4=")
    assert w.clock.start == later and list(w.tokens) == ["dG9rZW4="]
    assert all(later - timedelta(days=600) < d.created_at and d.updated_at <= later for d in w.dossiers.values())
    base = seed_world(seed=11, dossiers=60, start=later)
    assert [d.champs[1].value for d in w.dossiers.values()] == [d.champs[1].value for d in base.dossiers.values()]


def test_token_is_ds_format_and_covers_the_three_demarches(world):
    [(bearer, token)] = world.tokens.items()
    uuid, secret = base64.urlsafe_b64decode(bearer).decode().split(";")
    assert len(uuid) == 36 and uuid.count("-") == 4 and len(secret) >= 32
    assert token.demarches == frozenset(DEMARCHES) and token.write_access and not token.expired and not token.revoked


def test_counts_per_demarche(world):
    assert len(world.dossiers) == 3000
    assert len(world.deleted) == 90
    per = Counter(d.demarche_number for d in world.dossiers.values())
    assert set(per) == {OCCITANIE, POITIERS, CRETEIL}
    assert 0.44 < per[OCCITANIE] / 3000 < 0.53 and 0.2 < per[POITIERS] / 3000 < 0.29
    assert 0.22 < per[CRETEIL] / 3000 < 0.33
    assert {x.number for x in world.deleted}.isdisjoint(world.dossiers)
    assert {x.reason for x in world.deleted} <= {"user_request", "instructeur_request", "manager_request",
                                                 "user_removed", "expired"}


def test_fates_are_exact_shares(world):
    names = Counter(a for d in world.dossiers.values() for a in d.anomalies)
    assert names[A.BROUILLON] == 150
    assert names[A.HIDDEN_BY_ADMINISTRATION] == names[A.HIDDEN_BY_USER_EN_CONSTRUCTION] == 30
    assert names[A.HIDDEN_BY_EXPIRY] == 30 and names[A.HIDDEN_BY_USER_TERMINATED] == 15
    assert 0 < names[A.USAGER_DELETED] < 40


def test_brouillons_are_in_the_world_never_deposited(world):
    brouillons = [d for d in world.dossiers.values() if d.state == "brouillon"]
    assert len(brouillons) == 150 and {d.demarche_number for d in brouillons} == set(DEMARCHES)
    for d in brouillons:
        assert d.depose_at is None and not d.messages and not d.traitements and d.anomalies == (A.BROUILLON,)


def test_hidden_dossiers_follow_ds_rules(world):
    now = world.clock.start
    for d in world.dossiers.values():
        if A.HIDDEN_BY_ADMINISTRATION in d.anomalies:
            assert d.state in TERMINATED and now - timedelta(days=14) < d.hidden_by_administration_at <= now
        if A.HIDDEN_BY_USER_EN_CONSTRUCTION in d.anomalies:
            assert d.state == "en_construction" and now - timedelta(days=14) < d.hidden_by_user_at <= now
        if A.HIDDEN_BY_USER_TERMINATED in d.anomalies:
            assert d.state in TERMINATED and d.processed_at <= d.hidden_by_user_at <= now
        if A.HIDDEN_BY_EXPIRY in d.anomalies:
            assert d.state in TERMINATED and d.demarche_number == CRETEIL
            assert d.processed_at + timedelta(days=364) < d.hidden_by_expired_at <= now
        if not set(d.anomalies) & {A.HIDDEN_BY_ADMINISTRATION, A.HIDDEN_BY_USER_EN_CONSTRUCTION,
                                   A.HIDDEN_BY_USER_TERMINATED, A.HIDDEN_BY_EXPIRY}:
            assert d.hidden_by_administration_at is d.hidden_by_user_at is d.hidden_by_expired_at is None


def test_deleted_dossiers_are_consistent(world):
    now = world.clock.start
    ids = [x.id for x in world.deleted]
    assert ids == sorted(ids) and [x.deleted_at for x in world.deleted] == sorted(x.deleted_at for x in world.deleted)
    for x in world.deleted:
        assert x.deleted_at <= now and x.deleted_at.tzinfo is UTC
        if x.reason == "user_request":
            assert x.state == "en_construction" and x.deleted_at < now - timedelta(days=14)  # backdated
        if x.reason == "expired":
            assert x.demarche_number == CRETEIL and x.deleted_at > now - timedelta(days=60)


def test_anomaly_rates_roughly_as_documented(world):
    occ, poi, cre = (_deposited(world, n) for n in DEMARCHES)
    assert 0.05 < _rate(occ, A.COUNT_MISMATCH) < 0.11
    assert 0.025 < _rate(occ, A.COST_MISMATCH) < 0.08
    assert 0.015 < _rate(poi, A.SIGNATURE_UNCHECKED) < 0.07
    assert 0.025 < _rate(cre, A.MISSING_UPLOAD) < 0.08
    assert 0.01 < _rate(poi + cre, A.DUPLICATE_SCHOOL) < 0.055
    assert 0.008 < _rate(occ + poi + cre, A.BAD_SIRET) < 0.035
    assert 0.01 < _rate(occ, A.REOPENED) < 0.05
    uais = _school_uais(world)
    bad = sum(not ident.uai_is_valid(u) for u in uais) / len(uais)
    assert 0.015 < bad < 0.05


def test_planted_anomalies_are_really_in_the_data(world):
    fee = forms.OCCITANIE_FEE_EUROS
    for d in world.dossiers.values():
        if d.state == "brouillon":
            continue
        by_id = {c.stable_id: c for c in d.champs}
        siret = d.demandeur["siret"]
        assert (A.BAD_SIRET in d.anomalies) == (not ident.luhn_is_valid(siret)), d.number
        assert (A.DEMANDEUR_INCOMPLETE in d.anomalies) == (d.demandeur["__typename"] == "PersonneMoraleIncomplete")
        if d.demarche_number == OCCITANIE:
            listed = len(by_id[4210009].value)
            count = int(by_id[4210012].value)
            cost = int(by_id[4210013].value.removesuffix(" €").replace(" ", ""))
            assert (A.COUNT_MISMATCH in d.anomalies) == (count != listed), d.number
            assert (A.COST_MISMATCH in d.anomalies) == (cost != count * fee), d.number
        if d.demarche_number == POITIERS:
            assert (A.SIGNATURE_UNCHECKED in d.anomalies) == (by_id[3870132].value is False)
            schools = [r.champs[1].value for r in by_id[3870107].rows]
            assert (A.DUPLICATE_SCHOOL in d.anomalies) == (len(set(schools)) < len(schools))
        if d.demarche_number == CRETEIL:
            uploads = [by_id[i].files for i in (2954321, 2954323, 2954324)]
            visible = [[f for f in files if f.virus_scan == "safe"] for files in uploads]
            assert (A.MISSING_UPLOAD in d.anomalies) == (not all(visible)), d.number
            uais = [r.champs[0].value.strip().upper() for r in by_id[2954315].rows]
            assert (A.DUPLICATE_SCHOOL in d.anomalies) == (len(set(uais)) < len(uais))
            assert (A.BAD_UAI in d.anomalies) == (not all(ident.uai_is_valid(u) for u in uais))


def test_generated_identifiers_are_valid_except_planted_ones(world):
    for dept in referentiel.DEPARTEMENTS:
        for commune in referentiel.communes(dept):
            assert ident.luhn_is_valid(commune.siren) and ident.luhn_is_valid(commune.siret)
            assert commune.siren.startswith("21" + dept) and commune.siret.startswith(commune.siren)
            assert commune.insee.startswith(dept) and all(s.uai.startswith("0" + dept) for s in commune.schools)
    planted = [d for d in world.dossiers.values() if A.BAD_UAI in d.anomalies]
    clean = [d for d in world.dossiers.values() if A.BAD_UAI not in d.anomalies and d.state != "brouillon"]
    assert planted and clean
    probe = World(clock=world.clock, dossiers={d.number: d for d in clean})
    assert all(ident.uai_is_valid(u) for u in _school_uais(probe))


def test_ident_arithmetic():
    assert ident.make_uai("54", 232) == "0540232J"  # seed 001's example
    assert ident.commune_siren("31555") == "213105554"  # Toulouse
    assert ident.uai_is_valid("0340001A") is False and ident.uai_is_valid("034000") is False
    rng = random.Random(1)
    assert not ident.uai_is_valid(ident.with_wrong_letter("0540232J", rng))
    siret = ident.siret_from(ident.commune_siren("34172"), 1)
    assert len(siret) == 14 and ident.luhn_is_valid(siret) and not ident.luhn_is_valid(ident.with_bad_luhn(siret, rng))


def test_champ_stable_ids_match_descriptors(world):
    for dem in world.demarches.values():
        [revision] = dem.revisions
        assert revision.id == dem.active_revision_id
        descs = {x.stable_id: x for x in revision.champ_descriptors}
        children = {c.stable_id: c for x in revision.champ_descriptors for c in x.children}
        notes = {x.stable_id: x for x in revision.annotation_descriptors}
        assert any(x.required for x in revision.annotation_descriptors) == (dem.number == OCCITANIE)
        for d in (d for d in world.dossiers.values() if d.demarche_number == dem.number):
            assert d.revision_id == revision.id
            assert [c.stable_id for c in d.annotations] == list(notes)
            order = [c.stable_id for c in d.champs]
            assert order == [i for i in descs if i in order]  # descriptor order, hidden conditionals left out
            for c in d.champs:
                assert c.label == descs[c.stable_id].label
                for row in c.rows:
                    assert all(cell.stable_id in children for cell in row.champs)
                    assert len(row.id) == 26


def test_groupes_instructeurs_and_labels(world):
    for number, dem in world.demarches.items():
        tech = TECH_ACCOUNTS[number]
        assert 2 <= len(dem.groupes) <= 3 and sum(g.closed for g in dem.groupes) == 1
        for g in dem.groupes:
            assert tech in [world.instructeurs[i].email for i in g.instructeur_ids]
        assert dem.labels
    for d in world.dossiers.values():
        dem = world.demarches[d.demarche_number]
        assert d.groupe_instructeur_number in {g.number for g in dem.groupes}
        assert set(d.label_ids) <= {lb.id for lb in dem.labels}
        assert set(d.follower_ids) <= set(world.instructeurs)


def test_timestamps_messages_and_states_are_coherent(world):
    now = world.clock.start
    message_ids = []
    for d in world.dossiers.values():
        events = _events(d)
        assert all(t.tzinfo is UTC for t in events)
        assert max(events) <= d.updated_at <= now
        assert d.archived or d.updated_at == max(events)  # archiving has no timestamp of its own
        assert d.champs_updated_at >= d.created_at and d.annotations_updated_at >= d.created_at
        times = [m.created_at for m in d.messages]
        assert times == sorted(times)
        assert [m.id for m in d.messages] == sorted(m.id for m in d.messages)
        message_ids += [m.id for m in d.messages]
        if d.state != "brouillon":
            assert d.created_at < d.depose_at <= now
            assert d.traitements[0].event == "depose" and d.traitements[-1].state == d.state
            assert d.messages[0].email == SYSTEM_EMAIL
        if d.state in TERMINATED:
            assert d.processed_at is not None
        if d.demarche_number in (OCCITANIE, POITIERS) and d.state == "accepte":
            assert d.attestation is not None and d.attestation.content_type == "application/pdf"
    assert len(message_ids) == len(set(message_ids))
    with_micros = [m for d in world.dossiers.values() for m in d.messages if m.created_at.microsecond]
    assert len(with_micros) > 0.9 * len(message_ids)


def test_dossier_numbers_increase_with_creation(world):
    ordered = sorted(world.dossiers.values(), key=lambda d: d.created_at)
    assert [d.number for d in ordered] == sorted(d.number for d in ordered)
    assert min(world.dossiers) >= FIRST_DOSSIER_NUMBER
    assert world.next_ids["Dossier"] >= max(world.dossiers)


def test_occitanie_conventions_come_back_in_every_way(world):
    occ = _deposited(world, OCCITANIE)
    outcomes = Counter(a for d in occ for a in d.anomalies if a.startswith("convention_"))
    assert {A.CONVENTION_ON_TIME, A.CONVENTION_LATE, A.CONVENTION_MISSING} <= set(outcomes)
    replies = Counter(a for d in occ for a in d.anomalies if a.startswith("reply_") or a == A.PDF_SCAN_PENDING)
    assert {A.REPLY_NON_PDF, A.REPLY_IMAGE, A.REPLY_TEXT, A.PDF_SCAN_PENDING} <= set(replies)
    for d in occ:
        instructeurs = {world.instructeurs[i].email for i in world.instructeurs}
        pdfs = [m.created_at for m in d.messages if m.email not in instructeurs and m.email != SYSTEM_EMAIL
                and any(f.filename.lower().endswith(".pdf") for f in m.attachments)]
        deadline = add_months(d.depose_at.astimezone(PARIS), 2).date()  # valid until 23:59:59 Paris
        if A.CONVENTION_ON_TIME in d.anomalies:
            assert pdfs and pdfs[0].astimezone(PARIS).date() <= deadline
        if A.CONVENTION_LATE in d.anomalies:
            assert pdfs and pdfs[0].astimezone(PARIS).date() > deadline
        if A.CONVENTION_MISSING in d.anomalies:
            assert not pdfs
    assert any(d.state == "sans_suite" and d.motivation for d in occ)
    assert any(m.email not in (SYSTEM_EMAIL, d.usager_email) and "convention signée" in m.body
               for d in occ for m in d.messages)


def test_files_are_small_and_checksummed(world):
    files = [f for d in world.dossiers.values() for c in d.champs for f in c.files]
    files += [f for d in world.dossiers.values() for m in d.messages for f in m.attachments]
    files += [d.attestation for d in world.dossiers.values() if d.attestation]
    assert len({f.key for f in files}) == len(files)
    assert all(2_000 <= f.size <= 60_000 for f in files)
    for f in files[:: max(1, len(files) // 40)]:
        body = file_content(f.key, f.size, f.content_type)
        assert len(body) == f.size and base64.b64encode(hashlib.md5(body).digest()).decode() == f.checksum
    scans = Counter(f.virus_scan for f in files)
    assert scans["safe"] > scans["pending"] > 0 and scans["infected"] > 0


def test_dates_spread_before_the_clock_instead_of_piling_up_on_it(world):
    """DS's dossiers never change by the hundred in one second: a date the seeder would have put after the
    clock start is redrawn before it, so the last minutes hold a handful of dossiers, like any others."""
    now = world.clock.start
    seconds = Counter(d.updated_at.replace(microsecond=0) for d in world.dossiers.values())
    assert max(seconds.values()) <= 3
    for field in ("depose_at", "en_instruction_at", "processed_at", "hidden_by_expired_at"):
        times = Counter(getattr(d, field).replace(microsecond=0) for d in world.dossiers.values() if getattr(d, field))
        assert max(times.values()) <= 3, field
    assert max(Counter(x.deleted_at.replace(microsecond=0) for x in world.deleted).values()) <= 2
    recent = Counter(d.demarche_number for d in world.dossiers.values() if now - d.updated_at <= timedelta(minutes=10))
    assert all(n <= 5 for n in recent.values()), recent
    files = [f for d in world.dossiers.values() for m in d.messages for f in m.attachments]
    files += [d.attestation for d in world.dossiers.values() if d.attestation]
    later = [t for d in world.dossiers.values() for t in _events(d) if t > now] + [
        f for f in files if f.created_at > now]
    assert later == [] and all(x.deleted_at <= now for x in world.deleted)


def test_only_the_latest_uploads_are_still_being_scanned(world):
    """DS's virus scan ends within minutes: pending files are the few sent in the last half hour, among
    them FRESH_PDF_REPLIES signed conventions on listed dossiers; infected files stay infected."""
    now = world.clock.start
    pending = [(d, f) for d in world.dossiers.values() for m in d.messages for f in m.attachments
               if f.virus_scan == "pending"]
    pending += [(d, f) for d in world.dossiers.values() for c in d.champs for f in c.files if f.virus_scan == "pending"]
    assert A.FRESH_PDF_REPLIES <= len(pending) <= 6
    assert all(now - timedelta(minutes=30) < f.created_at <= now for _, f in pending)
    planted = [d for d in world.dossiers.values() if A.PDF_SCAN_PENDING in d.anomalies]
    assert len(planted) >= A.FRESH_PDF_REPLIES
    for d in planted:
        assert d.state == "accepte" and not d.archived and d.hidden_by_administration_at is None
        assert any(f.virus_scan == "pending" and f.filename.lower().endswith(".pdf")
                   for m in d.messages if m.email != SYSTEM_EMAIL for f in m.attachments)
        assert A.CONVENTION_MISSING not in d.anomalies
    assert any(f.virus_scan == "infected" for d in world.dossiers.values() for c in d.champs for f in c.files)


def test_the_trash_holds_nothing_ds_would_have_purged(world):
    """pendingDeletedDossiers (docs/ds-api.md §6): DS purges what was hidden two weeks ago."""
    now = world.clock.start
    trash = [d.hidden_by_administration_at or d.hidden_by_user_at for d in world.dossiers.values()
             if (d.state != "brouillon" and d.hidden_by_administration_at)
             or (d.state == "en_construction" and d.hidden_by_user_at)]
    assert trash and all(now - timedelta(days=14) < at <= now for at in trash)


def test_make_dossier_every_state():
    w = seed_world(seed=3, dossiers=40)
    rng, when = random.Random(5), w.clock.start + timedelta(hours=1)
    last = w.next_ids["Dossier"]
    for number in DEMARCHES:
        for state in ("brouillon", "en_construction", "en_instruction", "accepte", "refuse", "sans_suite"):
            d = make_dossier(w, number, rng, when, state)
            assert w.dossiers[d.number] is d and d.number > last and d.state == state
            last = d.number
            assert d.updated_at == when and d.anomalies == ()
            assert d.depose_at is None if state == "brouillon" else d.created_at < d.depose_at <= when
            assert (d.attestation is not None) == (state == "accepte" and number != CRETEIL)
            if state == "accepte" and number != CRETEIL:
                assert [t.event for t in d.traitements] == ["depose", "accepte_automatiquement"]
    with pytest.raises(ValueError, match="unknown démarche"):
        make_dossier(w, 1, rng, when)
    with pytest.raises(ValueError, match="unknown dossier state"):
        make_dossier(w, OCCITANIE, rng, when, "perdu")


def test_make_usager_message_kinds():
    w = seed_world(seed=3, dossiers=40)
    d = next(d for d in w.dossiers.values() if d.demarche_number == OCCITANIE and d.state == "accepte")
    before, when = d.updated_at, w.clock.start + timedelta(minutes=3)
    expected = {"signed_pdf": ("application/pdf", "application/octet-stream"),
                "non_pdf": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                            "application/vnd.oasis.opendocument.text"),
                "image": ("image/jpeg", "image/png"), "text": ()}
    for kind, types in expected.items():
        m = make_usager_message(w, d, kind, when)
        assert d.messages[-1] is m and m.created_at == when and m.email != SYSTEM_EMAIL and m.body
        assert m.id == w.next_ids["Commentaire"]
        assert len(m.attachments) == (0 if kind == "text" else 1)
        assert all(f.content_type in types for f in m.attachments)
    assert make_usager_message(w, d, "signed_pdf", when, virus_scan="pending").attachments[0].virus_scan == "pending"
    assert d.updated_at == before
    with pytest.raises(ValueError, match="unknown usager message kind"):
        make_usager_message(w, d, "fax", when)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="dossiers must be"):
        seed_world(dossiers=-1)


def test_dossiers_created_later_are_the_same_for_a_seed_whatever_the_time():
    """The demo's activity makes the same dossiers on every run: a batch's generator is seeded by the
    seed and the batch, not by the simulated clock (which ticks with the real one)."""
    from connector.simulator.core import Simulator

    def created(advance: timedelta) -> list[tuple]:
        world = seed_world(seed=2026, dossiers=60)
        world.clock.advance(advance)
        sim = Simulator(world)
        demarche = next(iter(world.demarches))
        numbers = sim.create_dossiers(demarche, count=3) + sim.create_dossiers(demarche, count=2)
        return [(world.dossiers[n].demandeur, world.dossiers[n].usager_email, world.dossiers[n].anomalies,
                 len(world.dossiers[n].champs)) for n in numbers]

    first = created(timedelta())
    assert first == created(timedelta(minutes=7, seconds=3))
    assert len(first) == 5
