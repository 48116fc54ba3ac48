"""`ds-connector demo`, the README's first command, end to end in a subprocess."""

import re
import stat
import subprocess
import sys


def test_demo_serves_three_demarches_and_writes_a_private_token(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "connector", "demo", "--state-dir", str(tmp_path), "--dossiers", "120"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    counts = [int(n) for n in re.findall(r"démarche \d+: (\d+) visible dossiers", out.stdout)]
    assert len(counts) == 3, out.stdout
    # brouillons and hidden dossiers are in the 120 but never visible
    assert 0 < sum(counts) < 120
    token = tmp_path / "ds-api-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text().strip() not in out.stdout
    assert token.read_text().strip() not in (tmp_path / "config.toml").read_text()
    # the written config is valid and finds its token file
    check = subprocess.run(
        [sys.executable, "-m", "connector", "check-config", "--config", str(tmp_path / "config.toml")],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )
    assert check.returncode == 0, check.stderr
    assert token.read_text().strip() not in check.stdout + check.stderr
