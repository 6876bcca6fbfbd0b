"""The newsletter's name flows everywhere: From, the consent statement, the footer, page titles;
renaming it records a new consent statement version and never edits an old one."""

from __future__ import annotations

import re
from pathlib import Path

from _render_fixtures import ISSUE_DAY, sample_issue, set_config, write_issue
from click.testing import CliRunner
from sqlalchemy import select

from digest import confirmation
from digest.cli import main
from digest.issue import workspace_issue
from digest.people.changes import request_signup
from digest.render import Recipient, prepare
from digest.store import Store, open_store
from digest.store.schema import consent_texts
from digest.web.public import page
from digest.workspace import Workspace, open_workspace

EVIDENCE = {"ip": "192.0.2.1", "user_agent": "test", "form": "/subscribe"}


def test_init_name_fills_from_statement_footer_and_titles(tmp_path: Path) -> None:
    root = tmp_path / "ledger"
    result = CliRunner().invoke(main, ["init", str(root), "--name", "Tula Ledger"])
    assert result.exit_code == 0, result.output
    ws = open_workspace(root)
    n = ws.config.newsletter
    assert n.name == "Tula Ledger" and n.from_ == "Tula Ledger <brief@example.com>"
    statement = ws.config.privacy.consent_statement
    assert statement.startswith("Yes, send me Tula Ledger by email") and "{name}" not in statement
    assert "The Weekly Brief" not in (root / "digest.toml").read_text(encoding="utf-8")

    write_issue(ws, sample_issue(2))
    prepared = prepare(ws, workspace_issue(ws, ISSUE_DAY))
    html = prepared.html(Recipient("1", "ann@example.com"))
    assert "You get this email because you subscribed to Tula Ledger." in html
    assert re.search(r'<h1 class="name"[^>]*>Tula Ledger</h1>', html)

    mail = confirmation.build(ws, "ann@example.com", "", "https://x.example/confirm/t")
    assert mail.from_ == "Tula Ledger <brief@example.com>"
    assert "Yes, send me Tula Ledger by email" in mail.html and "Tula Ledger" in mail.subject

    form = page(
        ws, "public_subscribe.html", form_token="t", errors=(), values={"email": "", "name": ""}
    )
    body = form.body.decode()
    assert "<title>Subscribe to Tula Ledger</title>" in body
    assert "Yes, send me Tula Ledger by email" in body


def _statements(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(consent_texts.c.version, consent_texts.c.body)
            .where(consent_texts.c.kind == "statement")
            .order_by(consent_texts.c.id)
        ).all()
    return [(row.version, row.body) for row in rows]


def test_renaming_records_a_new_statement_version(store: Store, workspace: Workspace) -> None:
    request_signup(
        store, "ann@example.com", "Ann", method="web_form", source="test", evidence=EVIDENCE
    )
    renamed = set_config(workspace, 'name = "The Weekly Brief"', 'name = "Tula Ledger"')
    with open_store(renamed) as again:
        request_signup(
            again, "bob@example.com", "Bob", method="web_form", source="test", evidence=EVIDENCE
        )
        statements = _statements(again)
    assert [version for version, _ in statements] == ["1", "2"]
    assert "send me The Weekly Brief by email" in statements[0][1]
    assert "send me Tula Ledger by email" in statements[1][1]
