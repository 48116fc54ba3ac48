"""``ds-connector export KIND``: the lists for the ENT provider and billing, and the open anomalies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from connector.config import load_config, select_demarches
from connector.errors import ConnectorError
from connector.store import open_db_readonly


def export(config_path: Path | None, kind: str, demarches: list[int], fmt: str, output: Path | None,
           delimiter: str, decimal: str) -> int:
    from connector.forms import exports

    config = load_config(config_path)
    select_demarches(config, demarches)
    db = open_db_readonly(config.database.path)
    try:
        rows = exports.rows_of(db, config, kind, demarches or None)
    finally:
        db.close()
    text = exports.render(kind, rows, fmt, exports.CsvStyle(delimiter, decimal))
    if output is None:
        sys.stdout.write(text.removeprefix("\ufeff") if sys.stdout.isatty() else text)
        return 0
    tmp = output.with_name(output.name + ".part")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        raise ConnectorError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"{kind}: {len(rows)} line(s) -> {output}", err=True)
    return 0
