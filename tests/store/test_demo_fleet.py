"""``make demo-fleet``: two proxies on one PostgreSQL store; a CLI revocation blocks the
device on both proxies' open connections (and the hint when PostgreSQL is missing)."""

from __future__ import annotations

import io

from edgerules import demo_fleet


def test_demo_fleet_blocks_on_every_open_connection(postgres_database, monkeypatch):
    server = postgres_database.rsplit("/", 1)[0] + "/postgres"
    monkeypatch.setenv("EDGERULES_DEMO_POSTGRES", server)
    out = io.StringIO()
    assert demo_fleet.run(out) == 0, out.getvalue()
    text = out.getvalue()
    assert "demo-fleet OK: 2 of 2 proxies blocked" in text
    rows = [line for line in text.splitlines() if line.startswith("proxy-")]
    assert len(rows) == 2
    for row in rows:
        cells = row.split()
        # before 200, after 403, on the same connection
        assert cells[2:5] == ["200", "403", "yes"] and cells[-1] == "ok", row


def test_demo_fleet_says_how_to_start_postgresql(monkeypatch):
    monkeypatch.setenv("EDGERULES_DEMO_POSTGRES", "postgresql://postgres@127.0.0.1:1/postgres")
    out = io.StringIO()
    assert demo_fleet.run(out) == 2
    lines = out.getvalue().strip().splitlines()
    assert "not reachable" in lines[0]
    assert len(lines) == 2 and "docker run" in lines[1] and "EDGERULES_DEMO_POSTGRES" in lines[1]
