"""The lists the ENT provider (AAF) and billing need, and the open anomalies: xlsx for people, CSV and
JSON for scripts.

- ``ecoles``: every school of every dossier (UAI as typed and normalised, valid flag);
- ``ouvertures``: schools whose ENT access must open: accepted dossiers, and, where the profile needs a
  signed convention (Occitanie), only once it is obtained (the filter is never skipped: an empty or
  unknown selection exports nothing, never every démarche unfiltered);
- ``fermetures``: schools whose access must close: dossiers classés sans suite or refused after having
  been accepted;
- ``facturation``: one line per collectivité (SIRET, name, schools, unit fee, amount) with the object
  line of the titre de perception, and ``a_verifier``: the rules with an open error anomaly on one of
  its dossiers (``strict=True`` holds those lines back instead);
- ``anomalies``: the anomalies still open, per dossier, for the instructeurs;
- ``renouvellements``: every school of the previous campaign of a démarche configured with
  ``previous = N``, with its renewal status (table ``renouvellements``). For such a démarche,
  ``ouvertures`` also says ``nouvelle`` or ``renouvelee`` and the opening date, and ``fermetures`` adds
  last year's schools not renewed at the cut-off (or whose new request was refused), with the reason.

Formats:

- **xlsx** (XlsxWriter), for people: typed cells (amounts are numbers in euros with a total, dates are
  dates, SIRET, UAI and dossier numbers are text so that no spreadsheet turns them into floats or drops a
  leading zero), French headers and values, frozen header row, autofilter, fitted widths, printed
  landscape one page wide with the header row repeated; a first sheet names the démarches and the
  export's date. Every string is written as a text cell, never as a formula.
- **csv**, for scripts: UTF-8 with a BOM, ``;`` and a decimal comma (configurable), ISO dates, codes as
  in JSON; every field quoted, so that a spreadsheet's import (tab, comma and semicolon ticked) still
  finds the columns. A text cell that a spreadsheet would evaluate (first character ``=``, ``+``, ``-``,
  ``@``, tab or carriage return) is prefixed with ``'`` (OWASP, CSV injection); numbers are numbers, a
  negative amount is not touched.
- **json**, for scripts: an array of objects, codes and numbers as stored.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlite_utils
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

from connector.config import Config, DemarcheConfig
from connector.forms.profiles import definition_of, resolve
from connector.forms.rules import RULES, euros, settings_for
from connector.store import forms as store
from connector.store import renewal as renewal_store
from connector.store.values import PARIS, day_of, paris_day

KINDS = ("ecoles", "ouvertures", "fermetures", "facturation", "anomalies", "renouvellements")
FORMATS = ("csv", "json", "xlsx")


@dataclass(frozen=True)
class CsvStyle:
    delimiter: str = ";"
    decimal: str = ","


# --- What each export holds -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column: ``key`` in CSV and JSON, ``header`` for people (xlsx). ``type``: text (free text a
    usager or DS wrote), id (identifier kept as text: SIRET, UAI, dossier numbers), int, money, date,
    flag (oui/non), state, severity, rules (list of rule codes)."""

    key: str
    header: str
    type: str = "text"
    wide: bool = False  # long sentences: wrapped in xlsx instead of one very wide column


def _columns(*specs: tuple) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in specs)


COLUMNS: dict[str, tuple[Column, ...]] = {
    "ecoles": _columns(
        ("demarche", "Démarche", "id"), ("dossier", "Dossier", "id"), ("etat", "État du dossier", "state"),
        ("rang", "Rang", "int"), ("uai_saisi", "UAI saisi"), ("uai", "UAI", "id"),
        ("uai_valide", "UAI valide", "flag"), ("ecole", "École"), ("commune", "Commune"),
        ("siret", "SIRET", "id"), ("collectivite", "Collectivité")),
    "ouvertures": _columns(
        ("uai", "UAI", "id"), ("ecole", "École"), ("commune", "Commune"), ("siret", "SIRET", "id"),
        ("collectivite", "Collectivité"), ("dossier", "Dossier", "id"), ("date", "Accepté le", "date"),
        ("demarche", "Démarche", "id"), ("type", "Nouvelle ou renouvelée", "state"),
        ("date_ouverture", "Ouverture le", "date")),
    "fermetures": _columns(
        ("uai", "UAI", "id"), ("ecole", "École"), ("commune", "Commune"), ("siret", "SIRET", "id"),
        ("collectivite", "Collectivité"), ("dossier", "Dossier", "id"), ("date", "Décision du", "date"),
        ("etat", "État du dossier", "state"), ("demarche", "Démarche", "id"), ("motif", "Motif", "text", True)),
    "facturation": _columns(
        ("demarche", "Démarche", "id"), ("siret", "SIRET", "id"), ("collectivite", "Collectivité"),
        ("dossiers", "Dossiers", "id"), ("nombre_ecoles", "Nombre d'écoles", "int"),
        ("tarif", "Tarif par école", "money"), ("montant", "Montant", "money"),
        ("objet", "Objet du titre de perception", "text", True), ("a_verifier", "À vérifier", "rules", True)),
    "anomalies": _columns(
        ("demarche", "Démarche", "id"), ("dossier", "Dossier", "id"), ("etat", "État du dossier", "state"),
        ("collectivite", "Collectivité"), ("code", "Règle", "id"), ("gravite", "Gravité", "severity"),
        ("champ", "Champ"), ("message", "Message", "text", True), ("depuis", "Depuis le", "date")),
    "renouvellements": _columns(
        ("demarche", "Démarche", "id"), ("demarche_precedente", "Démarche précédente", "id"), ("uai", "UAI", "id"),
        ("ecole", "École"), ("commune", "Commune"), ("statut", "Statut", "state"),
        ("dossier_precedent", "Dossier précédent", "id"), ("siret_precedent", "SIRET précédent", "id"),
        ("collectivite_precedente", "Collectivité précédente"), ("dossier", "Dossier", "id"),
        ("siret", "SIRET", "id"), ("collectivite", "Collectivité"),
        ("changement_titulaire", "Changement de titulaire", "flag"), ("convention", "Convention", "state"),
        ("ouverture", "Ouverture le", "date"), ("motif", "Motif", "text", True)),
}

TITLES = {
    "ecoles": "Écoles de chaque dossier",
    "ouvertures": "Écoles dont l'accès à l'ENT ouvre",
    "fermetures": "Écoles dont l'accès à l'ENT ferme",
    "facturation": "Facturation : une ligne par collectivité",
    "anomalies": "Anomalies ouvertes",
    "renouvellements": "Renouvellement des écoles de la campagne précédente",
}

STATES = {"accepte": "accepté", "sans_suite": "classé sans suite", "refuse": "refusé",
          "en_construction": "en construction", "en_instruction": "en instruction", "brouillon": "brouillon",
          # the renewal's statuses and types (table renouvellements)
          "renouvelee": "renouvelée", "en_attente": "en attente", "non_renouvelee": "non renouvelée",
          "fermee": "fermée", "nouvelle": "nouvelle"}
SEVERITIES = {"error": "erreur", "warning": "avertissement"}


@dataclass
class Export:
    """One kind's rows, the démarches they come from (number -> title), the lines held back and what
    the reader should know (e.g. a named démarche that is not billed)."""

    kind: str
    rows: list[dict]
    demarches: dict[int, str | None] = field(default_factory=dict)
    held_back: int = 0
    notes: list[str] = field(default_factory=list)


# --- Reading the rows -------------------------------------------------------------------------------


def _config_of(config: Config | None, number: int) -> DemarcheConfig | None:
    return next((d for d in getattr(config, "demarches", ()) or () if d.number == number), None)


def _demarches(db: sqlite_utils.Database, demarches: list[int] | None) -> list[int]:
    """The démarches of the mirror among ``demarches`` (None: every one). Never widened: an explicit
    selection with nothing in the mirror is empty."""
    known = store.demarche_numbers(db)
    if demarches is None:
        return known
    return [n for n in dict.fromkeys(demarches) if n in known]


def _profile(db: sqlite_utils.Database, config: Config | None, number: int) -> str:
    return store.stored_profile(db, number) or resolve(db, number, _config_of(config, number)).profile


def school_year(title: str | None, today: date | None = None) -> str:
    """``"… 2026-2027"`` -> ``"2026/2027"``; else the school year of ``today`` (September to August)."""
    m = re.search(r"(20\d\d)\s*[-/]\s*(20\d\d)", title or "")
    if m:
        return f"{m[1]}/{m[2]}"
    today = today or paris_day(datetime.now(PARIS))
    start = today.year if today.month >= 9 else today.year - 1
    return f"{start}/{start + 1}"


def billing(db: sqlite_utils.Database, config: Config | None, demarches: list[int] | None,
            strict: bool = False) -> tuple[list[dict], int, list[int], list[str]]:
    """One line per collectivité and démarche: the schools whose access opens (see ``ouvertures``),
    billed at the démarche's fee, with the titre de perception's object line, and ``a_verifier``: the
    codes of the rules with an open error anomaly on one of the line's dossiers. With ``strict``, those
    lines are left out. Only the démarches whose profile is billed (a cost declared in the form): a
    named one that is not gets a note. Returns (lines, lines held back, démarches billed, notes)."""
    numbers = _demarches(db, demarches)
    profiles = {n: _profile(db, config, n) for n in numbers}
    billed = [n for n in numbers if definition_of(profiles[n]).billed]
    notes = [f"démarche {n} non facturée : son formulaire ({profiles[n]}) ne déclare pas de coût"
             for n in numbers if demarches is not None and n not in billed]
    fees = {n: settings_for(resolve(db, n, _config_of(config, n)), _config_of(config, n)).fee for n in billed}
    notes += [f"démarche {n} non facturée : tarif par école inconnu (ni dans le formulaire ni dans la "
              "configuration : voir check-config)" for n in billed if fees[n] is None]
    billed = [n for n in billed if fees[n] is not None]
    rows = openings(db, config, billed)
    lines: dict[tuple[int, str], dict] = {}
    for r in rows:
        key = (r["demarche"], r["siret"] or f"dossier {r['dossier']}")
        line = lines.setdefault(key, {"demarche": r["demarche"], "siret": r["siret"],
                                      "collectivite": r["collectivite"], "dossiers": set(), "uais": set()})
        line["dossiers"].add(r["dossier"])
        line["uais"].add(r["uai"])
    errors = store.open_error_codes(db, sorted({n for line in lines.values() for n in line["dossiers"]}))
    out, held = [], 0
    for (number, _), line in sorted(lines.items(), key=lambda kv: (kv[0][0], kv[1]["collectivite"] or "")):
        check = sorted({code for n in line["dossiers"] for code in errors.get(n, ())})
        if strict and check:
            held += 1
            continue
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
            "a_verifier": check,
        })
    return out, held, billed, notes


def openings(db: sqlite_utils.Database, config: Config | None, demarches: list[int] | None) -> list[dict]:
    numbers = _demarches(db, demarches)
    need = {n for n in numbers if definition_of(_profile(db, config, n)).convention_deadline}
    return store.export_openings(db, numbers, need)


# --- the renewal from one school year to the next (rows of table ``renouvellements``) -------------


def _renewal_rows(db: sqlite_utils.Database, numbers: list[int], statuts: tuple[str, ...] = ()) -> list[dict]:
    return [r for r in renewal_store.rows(db, None, statuts) if r["demarche_number"] in numbers]


def renewal_openings(db: sqlite_utils.Database, config: Config | None, numbers: list[int]) -> list[dict]:
    """``ouvertures`` with, for a démarche renewing a previous campaign, ``type`` and ``date_ouverture``."""
    rows = openings(db, config, numbers)
    known = {(r["demarche_number"], r["uai"]): r for r in _renewal_rows(db, numbers)}
    for row in rows:
        r = known.get((row["demarche"], row["uai"]))
        if r is not None and r["type"]:
            row["type"], row["date_ouverture"] = r["type"], r["ouverture"]
    return rows


def renewal_closings(db: sqlite_utils.Database, config: Config | None, numbers: list[int]) -> list[dict]:
    """``fermetures`` plus last year's schools not renewed at the cut-off, or whose new request was
    refused or classée sans suite (when that dossier is not already listed), with the reason."""
    rows = store.export_closings(db, numbers)
    listed = {(r["demarche"], r["uai"]) for r in rows}
    cutoffs = {d.number: d.renewal.cutoff for d in getattr(config, "demarches", ()) or ()
               if getattr(d, "renewal", None) is not None}
    for r in _renewal_rows(db, numbers, ("non_renouvelee", "fermee")):
        if (r["demarche_number"], r["uai"]) in listed:
            continue
        cutoff = cutoffs.get(r["demarche_number"])
        rows.append({"uai": r["uai"], "ecole": r["ecole"], "commune": r["commune"], "siret": r["siret_precedent"],
                     "collectivite": r["collectivite_precedente"], "dossier": r["dossier_precedent"],
                     "date": cutoff.isoformat() if cutoff and r["statut"] == "non_renouvelee" else None,
                     "etat": r["statut"], "demarche": r["demarche_number"], "motif": r["motif"]})
    return rows


def renewals(db: sqlite_utils.Database, config: Config | None, numbers: list[int]) -> list[dict]:
    """Every school of the previous campaigns (not the new ones) with its status."""
    return [{**r, "demarche": r["demarche_number"], "demarche_precedente": r["previous_demarche_number"]}
            for r in _renewal_rows(db, numbers) if r["statut"] != "nouvelle"]


def build(db: sqlite_utils.Database, config: Config | None, kind: str, demarches: list[int] | None,
          strict: bool = False) -> Export:
    """The rows of ``kind`` for these démarches (None: every démarche of the mirror)."""
    numbers = _demarches(db, demarches)
    held, notes = 0, []
    if kind == "ecoles":
        rows = store.export_ecoles(db, numbers)
    elif kind == "ouvertures":
        rows = renewal_openings(db, config, numbers)
    elif kind == "fermetures":
        rows = renewal_closings(db, config, numbers)
    elif kind == "renouvellements":
        rows = renewals(db, config, numbers)
    elif kind == "facturation":
        rows, held, numbers, notes = billing(db, config, demarches, strict)
    elif kind == "anomalies":
        rows = store.export_anomalies(db, numbers)
    else:
        raise ValueError(f"unknown export {kind!r}: one of {', '.join(KINDS)}")
    return Export(kind, rows, {n: store.demarche_title(db, n) for n in numbers}, held, notes)


def rows_of(db: sqlite_utils.Database, config: Config | None, kind: str, demarches: list[int] | None,
            strict: bool = False) -> list[dict]:
    return build(db, config, kind, demarches, strict).rows


# --- CSV and JSON, for scripts ----------------------------------------------------------------------

# OWASP "CSV Injection": a cell starting with one of these is a formula (or becomes one) in Excel,
# LibreOffice or Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` made inert for a spreadsheet: a leading ``'`` when it starts like a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cell(value: Any, column: Column, style: CsvStyle) -> str:
    if value is None:
        return ""
    if column.type == "rules":
        return ", ".join(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}".replace(".", style.decimal)
    return neutralise(str(value))


def to_csv(kind: str, rows: list[dict], style: CsvStyle = CsvStyle()) -> str:
    """The rows as CSV text, BOM first (write it as UTF-8), every field quoted."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=style.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    columns = COLUMNS[kind]
    writer.writerow([c.key for c in columns])
    for r in rows:
        writer.writerow([_csv_cell(r.get(c.key), c, style) for c in columns])
    return out.getvalue()


def to_json(kind: str, rows: list[dict]) -> str:
    columns = [c.key for c in COLUMNS[kind]]
    return json.dumps([{c: r.get(c) for c in columns} for r in rows], ensure_ascii=False, indent=1) + "\n"


def render(kind: str, rows: list[dict], fmt: str = "csv", style: CsvStyle = CsvStyle()) -> str:
    """CSV or JSON text (xlsx is binary: see ``to_xlsx``)."""
    if fmt == "csv":
        return to_csv(kind, rows, style)
    if fmt == "json":
        return to_json(kind, rows)
    raise ValueError(f"render() writes csv or json, not {fmt!r}")


# --- xlsx, for people -------------------------------------------------------------------------------

WRAP_WIDTH = 55  # characters: wide columns wrap beyond this
MAX_WIDTH = 40  # characters: other columns are fitted to their content up to this
LINE_HEIGHT = 12.75  # points, one line of 10 pt text: rows with wrapped text get their height set (Calc
# keeps an xlsx row's stored height on load, so a height left to the reader would overlap the next row)


def _lines(text: str, width: float) -> int:
    """How many lines ``text`` takes, wrapped in a column ``width`` characters wide."""
    per_line = max(int(width * 1.1) - 2, 1)  # width is in characters of the default 11 pt font
    return sum(max(-(-len(line) // per_line), 1) for line in text.splitlines() or [""])


class _Formats:
    def __init__(self, book: xlsxwriter.Workbook):
        base = {"font_name": "Calibri", "font_size": 10, "valign": "top"}
        self.header = book.add_format({**base, "bold": True, "bg_color": "#DDE4EE", "border": 1,
                                       "text_wrap": True, "valign": "vcenter"})
        self.text = book.add_format({**base, "num_format": "@"})
        self.inert = book.add_format({**base, "num_format": "@", "quote_prefix": True})
        self.wrap = book.add_format({**base, "num_format": "@", "text_wrap": True, "indent": 1})
        self.wrap_inert = book.add_format({**base, "num_format": "@", "text_wrap": True, "indent": 1,
                                           "quote_prefix": True})
        self.int = book.add_format({**base, "num_format": "0"})
        self.money = book.add_format({**base, "num_format": '#,##0.00\\ "€"'})
        self.date = book.add_format({**base, "num_format": "dd/mm/yyyy"})
        self.total_label = book.add_format({**base, "bold": True, "top": 1, "align": "right"})
        self.total_int = book.add_format({**base, "bold": True, "top": 1, "num_format": "0"})
        self.total_money = book.add_format({**base, "bold": True, "top": 1, "num_format": '#,##0.00\\ "€"'})
        self.title = book.add_format({"font_name": "Calibri", "font_size": 14, "bold": True})
        self.label = book.add_format({"font_name": "Calibri", "font_size": 10, "bold": True, "valign": "top"})
        self.plain = book.add_format({"font_name": "Calibri", "font_size": 10, "valign": "top", "text_wrap": True})


def _french(value: Any, column: Column) -> Any:
    """The value as people read it: French words for codes, oui/non, rule titles."""
    if column.type == "state":
        return STATES.get(value, value)
    if column.type == "severity":
        return SEVERITIES.get(value, value)
    if column.type == "flag":
        return "oui" if value else "non"
    if column.type == "rules":
        return "; ".join(RULES[c].title if c in RULES else c for c in value) if value else None
    return value


def _as_date(value: Any) -> date | None:
    """A date column's value as a date: a plain date as is, an instant as its Paris day (``day_of``)."""
    try:
        day = day_of(str(value))
    except ValueError:
        return None
    return date.fromisoformat(day) if day else None


def _header_text(text: str) -> str:
    return text.replace("&", "&&")


def _write_cell(sheet: Any, row: int, col: int, value: Any, column: Column, f: _Formats) -> int:
    """Write one typed cell; return its display length (for the column's width)."""
    value = _french(value, column)
    if value is None or value == "":
        return 0
    if column.type == "int" and isinstance(value, int | float) and not isinstance(value, bool):
        sheet.write_number(row, col, value, f.int)
        return len(str(value))
    if column.type == "money" and isinstance(value, int | float) and not isinstance(value, bool):
        sheet.write_number(row, col, value, f.money)
        return len(f"{value:,.2f} €")
    if column.type == "date" and (day := _as_date(value)) is not None:
        sheet.write_datetime(row, col, datetime(day.year, day.month, day.day), f.date)
        return 10
    text = str(value)
    inert = text.startswith(FORMULA_STARTS)
    if column.wide:
        sheet.write_string(row, col, text, f.wrap_inert if inert else f.wrap)
    else:
        sheet.write_string(row, col, text, f.inert if inert else f.text)
    return max((len(line) for line in text.splitlines()), default=0)


def _data_sheet(book: xlsxwriter.Workbook, f: _Formats, export: Export, name: str, exported_at: datetime) -> Any:
    sheet = book.add_worksheet(name)
    columns = COLUMNS[export.kind]
    widths = [min(len(c.header), 12) for c in columns]  # a longer header wraps
    for col, c in enumerate(columns):
        sheet.write_string(0, col, c.header, f.header)
    for i, r in enumerate(export.rows, start=1):
        for col, c in enumerate(columns):
            widths[col] = max(widths[col], _write_cell(sheet, i, col, r.get(c.key), c, f))
    widths = [min(w, WRAP_WIDTH if c.wide else MAX_WIDTH) + 2 for w, c in zip(widths, columns)]
    wide = [(col, c) for col, c in enumerate(columns) if c.wide]
    for i, r in enumerate(export.rows, start=1):
        lines = max((_lines(str(_french(r.get(c.key), c) or ""), widths[col]) for col, c in wide), default=1)
        if lines > 1:
            sheet.set_row(i, LINE_HEIGHT * lines)
    last = len(export.rows)
    if export.kind == "facturation":
        total_row = last + 1
        money = {c.key: i for i, c in enumerate(columns)}
        label_col = money["nombre_ecoles"] - 1
        sheet.write_string(total_row, label_col, "Total", f.total_label)
        for key, fmt in (("nombre_ecoles", f.total_int), ("montant", f.total_money)):
            col = money[key]
            ref = xl_col_to_name(col)
            # SUBTOTAL(109): the sum of the rows the autofilter shows.
            sheet.write_formula(total_row, col, f"=SUBTOTAL(109,{ref}2:{ref}{max(last, 1) + 1})", fmt,
                                sum(r[key] for r in export.rows))
    for col, width in enumerate(widths):
        sheet.set_column(col, col, width)
    sheet.set_row(0, 30)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(last, 1), len(columns) - 1)
    if last:
        sheet.ignore_errors({"number_stored_as_text": f"A2:{xl_col_to_name(len(columns) - 1)}"
                                                       f"{last + 1}"})
    # Printed: A4 landscape, one page wide, the header row on every page, what and when on top.
    sheet.set_paper(9)
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(0)
    sheet.set_margins(left=0.4, right=0.4, top=0.7, bottom=0.6)
    numbers = ", ".join(map(str, export.demarches)) or "aucune"
    sheet.set_header(f"&L&B{_header_text(TITLES[export.kind])}&B&CDémarche(s) {numbers}"
                     f"&RExport du {exported_at:%d/%m/%Y %H:%M}", {"margin": 0.3})
    sheet.set_footer("&CPage &P / &N", {"margin": 0.3})
    return sheet


def _about_sheet(book: xlsxwriter.Workbook, f: _Formats, exports: list[Export], exported_at: datetime) -> None:
    sheet = book.add_worksheet("Informations")
    sheet.set_column(0, 0, 26)
    sheet.set_column(1, 1, 100)
    sheet.write_string(0, 0, "ds-connector : export des démarches ENT-École", f.title)
    demarches: dict[int, str | None] = {}
    for e in exports:
        demarches.update(e.demarches)
    lines: list[tuple[str, str]] = [("Date de l'export", f"{exported_at:%d/%m/%Y à %H:%M} (heure de Paris)")]
    for n, title in sorted(demarches.items()):
        lines.append(("Démarche", f"{n} : {title}" if title else str(n)))
    if not demarches:
        lines.append(("Démarche", "aucune dans la base"))
    for e in exports:
        what = f"{TITLES[e.kind]} : {len(e.rows)} ligne(s)"
        if e.held_back:
            what += f", {e.held_back} retenue(s) (anomalie bloquante ouverte, option --strict)"
        lines.append((f"Feuille « {e.kind} »", what))
        lines += [("Note", note) for note in e.notes]
    if any(e.kind == "facturation" for e in exports):
        lines.append(("À vérifier", "une ligne de facturation dont un dossier a une anomalie bloquante encore "
                                    "ouverte (règle en erreur) : la règle est nommée dans la colonne « À vérifier » ; "
                                    "le détail est dans l'export « anomalies »."))
        lines.append(("Collectivité", "le nom saisi dans le formulaire, sinon la raison sociale du demandeur, "
                                      "sinon la commune de ses écoles."))
    lines.append(("Identifiants", "SIRET, UAI et numéros de dossier sont du texte : aucun zéro initial ni "
                                  "chiffre n'est perdu."))
    for i, (label, text) in enumerate(lines, start=2):
        sheet.write_string(i, 0, label, f.label)
        sheet.write_string(i, 1, text, f.plain)
        if (n := _lines(text, 100)) > 1:
            sheet.set_row(i, LINE_HEIGHT * n)
    sheet.set_landscape()
    sheet.fit_to_pages(1, 1)


def to_xlsx(exports: list[Export], exported_at: datetime | None = None) -> bytes:
    """A workbook: a first sheet naming the démarches and the export's date, then one sheet per export.
    Strings are written as text cells only (no formula, number or URL guessed from them)."""
    exported_at = (exported_at or datetime.now(PARIS)).astimezone(PARIS)
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False,
                                     "strings_to_numbers": False, "strings_to_urls": False})
    book.set_properties({"title": ", ".join(TITLES[e.kind] for e in exports), "author": "ds-connector",
                         "created": exported_at.replace(tzinfo=None)})
    f = _Formats(book)
    _about_sheet(book, f, exports, exported_at)
    sheets = [_data_sheet(book, f, e, e.kind, exported_at) for e in exports]
    if sheets:
        sheets[0].activate()
    book.close()
    return out.getvalue()
