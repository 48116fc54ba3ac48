"""Convention statuses from the mirror (issue 9 §1), against replies of every kind delivered by the
simulator through two months of its clock: on time, on the deadline day's last minute, the day after,
Word, image, text only, several PDFs, a PDF still being scanned, an infected PDF, a PDF known only by
its name, an instructeur's annotation. Real HTTP, real SQLite."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from connector.followup.deadlines import PARIS, add_months
from followup_env import convention, followup_config, occitanie, paris_at, statuses, sync_and_refresh


def test_every_kind_of_reply_gets_its_status(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim)
    numbers = sim.control("dossiers", demarche=occ, count=12, state="accepte")["numbers"]
    (on_time, word, image, text, two_pdfs, scanning, last_minute, day_after, nothing, noted, by_name,
     infected) = numbers
    depose = world.dossiers[on_time].depose_at
    deadline = add_months(depose.astimezone(PARIS).date(), 2)

    sim.control("advance", seconds=10 * 86400)
    sim.control("message", number=on_time, content_type="application/pdf", filename="convention signée.pdf")
    sim.control("message", number=word, kind="non_pdf")
    sim.control("message", number=image, kind="image")
    sim.control("message", number=text, kind="text")
    sim.control("message", number=two_pdfs, content_type="application/pdf", count=2)
    pending = sim.control("message", number=scanning, content_type="application/pdf", virus_scan="pending")
    sim.control("message", number=by_name, content_type="application/octet-stream", filename="CONVENTION.PDF")
    sim.control("message", number=infected, content_type="application/pdf", virus_scan="infected")
    sim.control("annotation", number=noted, stable_id=4210102, value=True)  # "Convention signée reçue"
    sync_and_refresh(config)
    got = statuses(config)
    assert {n: got[n] for n in numbers} == {
        on_time: "received_on_time", word: "to_review", image: "to_review", text: "awaiting",
        two_pdfs: "to_review", scanning: "to_confirm", last_minute: "awaiting", day_after: "awaiting",
        nothing: "awaiting", noted: "received_on_time", by_name: "received_on_time", infected: "awaiting"}
    row = convention(config, on_time)
    assert row["deadline"] == deadline.isoformat() and row["proof_message_id"] and row["proof_file_key"]
    assert row["reference_at"] == world.dossiers[on_time].depose_at.astimezone(PARIS).isoformat(timespec="seconds")
    assert convention(config, noted)["proof_annotation_id"] and convention(config, noted)["proof_message_id"] is None

    # The scan ends: a later sync re-reads the dossier (a scan does not bump it) and counts the PDF.
    sim.control("scan", key=pending["attachments"][0], result="safe")
    sync_and_refresh(config)
    assert statuses(config)[scanning] == "received_on_time"

    # The deadline day's last minute (Europe/Paris, winter time by then), then the next day's first.
    paris_at(world, datetime.combine(deadline, time(23, 59, 0), tzinfo=PARIS), sim)
    sim.control("message", number=last_minute, content_type="application/pdf")
    sync_and_refresh(config)
    got = statuses(config)
    assert got[last_minute] == "received_on_time" and got[nothing] == "awaiting"
    paris_at(world, datetime.combine(deadline + timedelta(days=1), time(0, 0, 30), tzinfo=PARIS), sim)
    sim.control("message", number=day_after, content_type="application/pdf")
    sync_and_refresh(config)
    got = statuses(config)
    assert {n: got[n] for n in numbers} == {
        on_time: "received_on_time", word: "to_review", image: "to_review", text: "overdue",
        two_pdfs: "to_review", scanning: "received_on_time", last_minute: "received_on_time",
        day_after: "received_late", nothing: "overdue", noted: "received_on_time", by_name: "received_on_time",
        infected: "overdue"}
    assert convention(config, day_after)["received_at"].startswith((deadline + timedelta(days=1)).isoformat())
    # Actions are off: nothing was written to DS.
    assert sim.control("log")["mutations"] == []


def test_refused_and_closed_dossiers_are_not_applicable_and_other_demarches_have_no_rows(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim, only_occitanie=False)
    refused, closed = sim.control("dossiers", demarche=occ, count=2, state="accepte")["numbers"]
    for number, state in ((refused, "refuse"), (closed, "sans_suite")):
        sim.control("state", number=number, state="en_instruction")
        sim.control("state", number=number, state=state, motivation="Doublon")
    sync_and_refresh(config)
    got = statuses(config)
    assert got[refused] == got[closed] == "not_applicable"
    others = {n for n, d in world.dossiers.items() if d.demarche_number != occ}
    assert not others & set(got)  # Poitiers and Créteil have no convention deadline
    assert {n for n, d in world.dossiers.items() if d.demarche_number == occ and d.depose_at} >= set(got)
