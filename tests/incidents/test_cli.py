"""`cpims-adapter incidents ...` as an IT officer runs it: scan, list, show, notice, close."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.cli import main
from adapter.privacy.events import record_security_event
from adapter.state import StateStore
from tests.support.smtp_sink import SmtpSink

from .conftest import DPO


def test_scan_list_show_notice_close(
    tmp_path: Path, sink: SmtpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[state]\nurl = "{url}"\n\n[incidents]\ndpo_emails = ["{DPO}"]\n'
        f"smtp_port = {sink.port}\nsmtp_starttls = false\n",
        encoding="utf-8",
    )
    with StateStore(url) as store, store.transaction() as conn:
        record_security_event(
            conn, "forged_code", department="police", detail="case code failed authentication"
        )

    errors: list[str] = []

    def cli(*args: str) -> tuple[int, str]:
        code = main(["--config", str(config), "incidents", *args])
        captured = capsys.readouterr()
        errors.append(captured.err)
        return code, captured.out

    code, out = cli("scan")
    assert code == 0 and "1 incident(s) opened" in out and "notices sent 1" in out
    assert len(sink.messages) == 1

    code, out = cli("list", "--format", "json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and listed["kind"] == "forged_code" and listed["deadline"] == "met"
    assert listed["status"] == "notified"

    code, out = cli("show", str(listed["id"]))
    assert code == 0 and DPO in out and "sent" in out

    code, out = cli("notice", str(listed["id"]))
    assert code == 0 and out.startswith("cpims-adapter: suspected personal-data breach")

    code, _ = cli("close", str(listed["id"]), "--by", "A. Khan", "--resolution", "x")
    assert code == 1  # too short a resolution: one clear line, no traceback
    assert "--resolution" in errors[-1] and "Traceback" not in errors[-1]

    code, out = cli(
        "close", str(listed["id"]), "--by", "A. Khan", "--resolution", "probe from a test system"
    )
    assert code == 0 and "closed by A. Khan" in out
    code, out = cli("list")
    assert code == 0 and "0 incident(s)" in out

    code, _ = cli("show", "99")
    assert code == 1 and "no incident 99" in errors[-1]


def test_the_runbook_has_every_step_and_the_readme_links_it() -> None:
    root = Path(__file__).resolve().parents[2]
    runbook = (root / "docs" / "runbook-breach.md").read_text(encoding="utf-8")
    for step in [
        "cpims-adapter keys rotate",
        "crosswalk",
        "24 hours",
        "incidents notice ID",
        "department_contacts",
        "cpims-adapter audit verify",
        "cpims-adapter incidents close ID --by",
    ]:
        assert step in runbook, step
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "## Breach handling" in readme and "(docs/runbook-breach.md)" in readme
