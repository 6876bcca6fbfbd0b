"""The import writer takes any source's rows: its own evidence names are spelled canonically."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import select

from digest import consent
from digest.people.audience import audience
from digest.people.imports.source import Policies, Refused, Row
from digest.people.imports.writer import ImportReport, apply
from digest.people.record import is_suppressed
from digest.store import Store, schema

STAMP = "2026-10-01T08:15:00.000000Z"


class ListSource:
    """A source of rows made in the test, with evidence and attribute names that sort
    around the writer's own keys."""

    evidence_names = ("aaa", "optin_ip", "zz{top}")
    tool = "made-up"
    title = "Made Up"
    list_name = "Weekly {list}"

    def __init__(self, rows: list[Row | Refused]) -> None:
        self._rows = rows
        self.attribute_names: tuple[str, ...] = ()

    def rows(self, policies: Policies) -> Iterator[Row | Refused]:
        self.attribute_names = ("Tags", "list")
        return iter(self._rows)


def test_a_source_of_its_own_is_written_with_its_evidence(store: Store) -> None:
    source = ListSource(
        [
            Row(
                2, "ann@example.com", "Ann", "active", STAMP, "", ("1", "192.0.2.1", "}"), ("", "L")
            ),
            Refused(3, "no email address"),
            Row(4, "bob@example.com", "", "active", STAMP, "2026-05-01", ("", "", ""), ()),
            Row(5, "ANN@example.com", "", "active", STAMP, "2026-05-01", ("", "", ""), ()),
            Row(6, "cy@example.com", "", "active", STAMP, "1999", ("", "", ""), ()),
            Row(7, "di@example.com", "", "unsubscribed", STAMP, "2026-05-01", ("", "", ""), ()),
            Row(8, "ed@example.com", "", "complete", STAMP, "2026-05-01", ("", "", ""), ()),
            Row(9, "fi@example.com", "", "bounced", STAMP, "1999", ("", "", ""), ()),
        ]
    )
    report = ImportReport("export.csv")
    apply(
        store,
        source,
        report,
        label="tool {list}",
        policy_version="2026-05-01",
    )
    assert report.written
    assert (report.rows, report.imported, report.merged, report.invalid) == (8, 2, 1, 3)
    assert report.suppressed == 2  # the unsubscribed row, and the bounced one: no policy needed
    assert "line 9: policy_version '1999' is unknown; suppressed all the same" in report.notes
    assert report.problems == [
        "line 3: no email address",
        "line 6: policy_version '1999' is unknown (known: 2026-05-01); register it: "
        "digest consent policy add VERSION --url URL --published DATE",
        "line 8: status 'complete' cannot be imported",
    ]
    assert sorted(s.email or "" for s in audience(store)) == ["ann@example.com", "bob@example.com"]
    assert is_suppressed(store, "di@example.com") and is_suppressed(store, "fi@example.com")
    with store.read() as conn:
        bodies = [body for (body,) in conn.execute(select(schema.consent_evidence.c.body))]
    for body in bodies:
        assert consent.canonical(json.loads(body)) == body
    ann = next(json.loads(b) for b in bodies if json.loads(b)["email"] == "ann@example.com")
    assert ann == {
        "aaa": "1",
        "attributes": {"list": "L"},
        "consented_at": STAMP,
        "email": "ann@example.com",
        "file": "tool {list}",
        "line": 2,
        "list": "Weekly {list}",
        "tool": "made-up",
        "name": "Ann",
        "optin_ip": "192.0.2.1",
        "policy_version": "2026-05-01",
        "zz{top}": "}",
    }
