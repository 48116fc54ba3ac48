"""The lists the ENT provider (AAF) and billing need, and the open anomalies, as CSV or JSON.

CSV opens right in LibreOffice and French Excel: UTF-8 with a BOM, ``;`` between fields, a decimal
comma (both configurable), ISO dates. JSON (an array of objects, numbers as numbers) is for scripts.

- ``ecoles``: every school of every dossier (UAI as typed and normalised, valid flag);
- ``ouvertures``: schools whose ENT access must open: accepted dossiers, and, where the profile needs a
  signed convention (Occitanie), only once it is obtained;
- ``fermetures``: schools whose access must close: dossiers classés sans suite or refused after having
  been accepted;
- ``facturation``: one line per collectivité (SIRET, name, schools, unit fee, amount) with the object
  line of the titre de perception;
- ``anomalies``: the anomalies still open, per dossier, for the instructeurs;
- ``renouvellements``: every school of the previous campaign of a démarche configured with
  ``previous = N``, with its renewal status (table ``renouvellements``). For such a démarche,
  ``ouvertures`` also says ``nouvelle`` or ``renouvelee`` and the opening date, and ``fermetures`` adds
  last year's schools not renewed at the cut-off (or whose new request was refused), with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlite_utils

from connector.forms.profiles import definition_of, resolve
from connector.forms.rules import euros, settings_for
from connector.store import forms as store
from connector.store import renewal as renewal_store

KINDS = ("ecoles", "ouvertures", "fermetures", "facturation", "anomalies", "renouvellements")
FORMATS = ("csv", "json")


@dataclass(frozen=True)
class CsvStyle:
    delimiter: str = ";"
    decimal: str = ","


def _config_of(config: Any, number: int) -> Any:
    return next((d for d in getattr(config, "demarches", ()) or () if d.number == number), None)


def _demarches(db: sqlite_utils.Database, config: Any, demarches: list[int] | None) -> list[int]:
    known = store.demarche_numbers(db)
    return [n for n in (demarches or known) if n in known]


def _profile(db: sqlite_utils.Database, config: Any, number: int) -> str:
    return store.stored_profile(db, number) or resolve(db, number, _config_of(config, number)).profile


def school_year(title: str | None, today: date | None = None) -> str:
    """``"… 2026-2027"`` -> ``"2026/2027"``; else the school year of ``today`` (September to August)."""
    m = re.search(r"(20\d\d)\s*[-/]\s*(20\d\d)", title or "")
    if m:
        return f"{m[1]}/{m[2]}"
    today = today or date.today()
    start = today.year if today.month >= 9 else today.year - 1
    return f"{start}/{start + 1}"


def billing(db: sqlite_utils.Database, config: Any, demarches: list[int] | None) -> list[dict]:
    """One line per collectivité and démarche: the schools whose access opens (see ``ouvertures``),
    billed at the démarche's fee, with the titre de perception's object line."""
    numbers = _demarches(db, config, demarches)
    billed = [n for n in numbers if definition_of(_profile(db, config, n)).billed] if not demarches else numbers
    fees = {n: settings_for(resolve(db, n, _config_of(config, n)), _config_of(config, n)).fee for n in billed}
    billed = [n for n in billed if fees[n] is not None]  # no fee known (check-config says so): nothing to bill
    rows = openings(db, config, billed)
    lines: dict[tuple[int, str], dict] = {}
    for r in rows:
        key = (r["demarche"], r["siret"] or f"dossier {r['dossier']}")
        line = lines.setdefault(key, {"demarche": r["demarche"], "siret": r["siret"],
                                      "collectivite": r["collectivite"], "dossiers": set(), "uais": set()})
        line["dossiers"].add(r["dossier"])
        line["uais"].add(r["uai"])
    out = []
    for (number, _), line in sorted(lines.items(), key=lambda kv: (kv[0][0], kv[1]["collectivite"] or "")):
        fee = fees[number]
        count = len(line["uais"])
        amount = count * fee
        year = school_year(store.demarche_title(db, number))
        out.append({
            "demarche": number, "siret": line["siret"], "collectivite": line["collectivite"],
            "dossiers": ", ".join(map(str, sorted(line["dossiers"]))), "nombre_ecoles": count,
            "tarif": fee, "montant": amount,
            "objet": f"{year} - Contribution des collectivités territoriales au coût de l'ENT-École selon la "
                     f"convention de partenariat, inscription de {count} école{'s' if count > 1 else ''} soit "
                     f"{count} × {euros(fee)} = {euros(amount)}".replace("\u202f", " "),
        })
    return out


def openings(db: sqlite_utils.Database, config: Any, demarches: list[int] | None) -> list[dict]:
    numbers = _demarches(db, config, demarches)
    need = {n for n in numbers if definition_of(_profile(db, config, n)).convention_deadline}
    return store.export_openings(db, numbers, need)


# --- the renewal from one school year to the next (rows of table ``renouvellements``) -------------


def _renewal_rows(db: sqlite_utils.Database, demarches: list[int] | None, statuts: tuple[str, ...] = ()) -> list[dict]:
    return [r for r in renewal_store.rows(db, None, statuts) if not demarches or r["demarche_number"] in demarches]


def renewal_openings(db: sqlite_utils.Database, config: Any, demarches: list[int] | None) -> list[dict]:
    """``ouvertures`` with, for a démarche renewing a previous campaign, ``type`` and ``date_ouverture``."""
    rows = openings(db, config, demarches)
    known = {(r["demarche_number"], r["uai"]): r for r in _renewal_rows(db, demarches)}
    for row in rows:
        r = known.get((row["demarche"], row["uai"]))
        if r is not None and r["type"]:
            row["type"], row["date_ouverture"] = r["type"], r["ouverture"]
    return rows


def renewal_closings(db: sqlite_utils.Database, config: Any, demarches: list[int] | None) -> list[dict]:
    """``fermetures`` plus last year's schools not renewed at the cut-off, or whose new request was
    refused or classée sans suite (when that dossier is not already listed), with the reason."""
    rows = store.export_closings(db, demarches)
    listed = {(r["demarche"], r["uai"]) for r in rows}
    cutoffs = {d.number: d.renewal.cutoff for d in getattr(config, "demarches", ()) or ()
               if getattr(d, "renewal", None) is not None}
    for r in _renewal_rows(db, demarches, ("non_renouvelee", "fermee")):
        if (r["demarche_number"], r["uai"]) in listed:
            continue
        cutoff = cutoffs.get(r["demarche_number"])
        rows.append({"uai": r["uai"], "ecole": r["ecole"], "commune": r["commune"], "siret": r["siret_precedent"],
                     "collectivite": r["collectivite_precedente"], "dossier": r["dossier_precedent"],
                     "date": cutoff.isoformat() if cutoff and r["statut"] == "non_renouvelee" else None,
                     "etat": r["statut"], "demarche": r["demarche_number"], "motif": r["motif"]})
    return rows


def renewals(db: sqlite_utils.Database, config: Any, demarches: list[int] | None) -> list[dict]:
    """Every school of the previous campaigns (not the new ones) with its status."""
    return [{**r, "demarche": r["demarche_number"], "demarche_precedente": r["previous_demarche_number"]}
            for r in _renewal_rows(db, demarches) if r["statut"] != "nouvelle"]


def rows_of(db: sqlite_utils.Database, config: Any, kind: str, demarches: list[int] | None) -> list[dict]:
    if kind == "ecoles":
        return store.export_ecoles(db, demarches)
    if kind == "ouvertures":
        return renewal_openings(db, config, demarches)
    if kind == "fermetures":
        return renewal_closings(db, config, demarches)
    if kind == "renouvellements":
        return renewals(db, config, demarches)
    if kind == "facturation":
        return billing(db, config, demarches)
    if kind == "anomalies":
        return store.export_anomalies(db, demarches)
    raise ValueError(f"unknown export {kind!r}: one of {', '.join(KINDS)}")


COLUMNS = {
    "ecoles": ("demarche", "dossier", "etat", "rang", "uai_saisi", "uai", "uai_valide", "ecole", "commune", "siret",
               "collectivite"),
    "ouvertures": ("uai", "ecole", "commune", "siret", "collectivite", "dossier", "date", "demarche", "type",
                   "date_ouverture"),
    "fermetures": ("uai", "ecole", "commune", "siret", "collectivite", "dossier", "date", "etat", "demarche",
                   "motif"),
    "facturation": ("demarche", "siret", "collectivite", "dossiers", "nombre_ecoles", "tarif", "montant", "objet"),
    "anomalies": ("demarche", "dossier", "etat", "collectivite", "code", "gravite", "champ", "message", "depuis"),
    "renouvellements": ("demarche", "demarche_precedente", "uai", "ecole", "commune", "statut", "dossier_precedent",
                        "siret_precedent", "collectivite_precedente", "dossier", "siret", "collectivite",
                        "changement_titulaire", "convention", "ouverture", "motif"),
}


def _cell(value: Any, style: CsvStyle) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.2f}" if not value.is_integer() else f"{value:.2f}"
        return text.replace(".", style.decimal)
    return str(value)


def to_csv(kind: str, rows: list[dict], style: CsvStyle = CsvStyle()) -> str:
    """The rows as CSV text, BOM first (write it as UTF-8)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=style.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    columns = COLUMNS[kind]
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_cell(r.get(c), style) for c in columns])
    return out.getvalue()


def to_json(kind: str, rows: list[dict]) -> str:
    columns = COLUMNS[kind]
    return json.dumps([{c: r.get(c) for c in columns} for r in rows], ensure_ascii=False, indent=1) + "\n"


def render(kind: str, rows: list[dict], fmt: str = "csv", style: CsvStyle = CsvStyle()) -> str:
    return to_csv(kind, rows, style) if fmt == "csv" else to_json(kind, rows)
