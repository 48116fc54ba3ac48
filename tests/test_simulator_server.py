"""`ds-connector simulate`: a real process on a free port, announced on stdout, stopped by a signal."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

from connector.simulator.seed import POITIERS
from simworld import start_simulate


def test_simulate_announces_its_url_token_and_demarches_then_stops_on_ctrl_c():
    process, lines, url = start_simulate("--dossiers", "12", "--seed", "3", "--token", "test-token-123")
    try:
        assert not url.endswith(":0/api/v2/graphql")
        assert lines[1] == "API token: test-token-123"
        assert lines[2] == "Démarches served (3):"
        assert re.match(rf"  {POITIERS}  .+  \(\d+ dossiers on the API, \d+ in all\)", lines[4])
        request = urllib.request.Request(
            url, data=json.dumps({"query": f"{{ demarche(number: {POITIERS}) {{ number }} }}"}).encode(),
            headers={"Authorization": "Bearer test-token-123", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"data": {"demarche": {"number": POITIERS}}}
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "DS simulator stopped." in out
    assert "Traceback" not in err


def test_simulate_says_why_it_cannot_listen():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "connector", "simulate", "--port", str(port),
                                 "--dossiers", "3"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
