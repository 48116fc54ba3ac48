"""``ds-connector export KIND``: the lists for the ENT provider and billing, and the open anomalies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from connector.config import load_config, select_demarches
from connector.errors import ConnectorError
from connector.forms import exports
from connector.store import open_db_readonly


def export(config_path: Path | None, kind: str, demarches: list[int], fmt: str, output: Path | None,
           style: exports.CsvStyle = exports.CsvStyle(), strict: bool = False) -> int:
    """Write ``kind`` (or ``all`` kinds, xlsx only: one sheet each) to ``output`` or standard output.
    A ``--demarche`` that is not configured is a ConfigError (exit 78) naming the configured ones."""
    config = load_config(config_path)
    select_demarches(config, demarches)
    kinds = exports.KINDS if kind == "all" else (kind,)
    db = open_db_readonly(config.database.path)
    try:
        built = [exports.build(db, config, k, demarches or None, strict) for k in kinds]
    finally:
        db.close()
    if fmt == "xlsx":
        data = exports.to_xlsx(built)
    else:
        data = exports.render(kind, built[0].rows, fmt, style).encode("utf-8")
    if output is None:
        if fmt == "csv" and sys.stdout.isatty():
            data = data.removeprefix("\ufeff".encode("utf-8"))
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        _write(output, data)
    for e in built:
        click.echo(_summary(e, output), err=True)
        for note in e.notes:
            click.echo(f"  {e.kind}: {note}", err=True)
    return 0


def _summary(e: exports.Export, output: Path | None) -> str:
    text = f"{e.kind}: {len(e.rows)} line(s)"
    if e.kind == "facturation":
        to_check = sum(1 for r in e.rows if r["a_verifier"])
        if to_check:
            text += f", {to_check} à vérifier (open error anomaly on a dossier)"
        if e.held_back:
            text += f", {e.held_back} held back by --strict (open error anomaly: see `export anomalies`)"
    return text + (f" -> {output}" if output else "")


def _write(output: Path, data: bytes) -> None:
    tmp = output.with_name(output.name + ".part")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, output)
    except OSError as exc:
        raise ConnectorError(f"cannot write {output}: {exc.strerror}") from None
