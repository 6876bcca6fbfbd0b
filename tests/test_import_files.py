"""Imports forgive the usual files and refuse the dangerous ones, naming the line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from conftest import FIXTURES, Cli

from digest.csvfile import MAX_LINE_BYTES, sniff_delimiter
from digest.errors import SubscriberError
from digest.people import audience
from digest.people.imports import generic
from digest.store import Store

SIGNUPS = FIXTURES / "subscribers" / "signups.csv"


def _write(tmp_path: Path, text: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_the_delimiter_is_found(
    cli: Cli, store: Store, tmp_path: Path, delimiter: str, name: str
) -> None:
    rows = [
        ["Email", "Name", "consented_at", "policy_version", "source"],
        ["anna@example.com", "Petrova, Anna", "2026-10-02T08:15:00Z", "2026-05-01", "form"],
        ["kim@example.com", "Kim", "2026-10-03T08:15:00Z", "2026-05-01", "desk"],
    ]
    text = "".join(delimiter.join(f'"{c}"' if "," in c else c for c in r) + "\n" for r in rows)
    result = cli("subscribers", "import", str(_write(tmp_path, text)))
    assert result.exit_code == 0, result.output
    assert (
        f"imported 2 (2 active, 0 pending), suppressed 0, merged 0, invalid 0 "
        f"(2 rows, {name}-separated)"
    ) in result.output
    names = sorted(s.name or "" for s in audience.audience(store))
    assert names == ["Kim", "Petrova, Anna"]


def test_sniffing_ignores_delimiters_inside_quotes() -> None:
    assert sniff_delimiter('"a;b;c",name\n') == ","
    assert sniff_delimiter("email\n") == ","
    assert sniff_delimiter("email;name;consented_at\n") == ";"


def test_a_header_without_email_names_what_it_found(cli: Cli, store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "E-Mail;Vorname;Datum\nanna@example.com;Anna;2026-10-02\n")
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert (
        f"{path}:1: no `email` column; read with a semicolon as the delimiter, the header "
        "has the columns 'e-mail', 'vorname', 'datum'"
    ) in result.output


def test_policy_version_for_a_file_without_the_column(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    path = _write(tmp_path, "email,consented_at,ip\nanna@example.com,2026-10-02T08:15:00Z,\n")
    missing = cli("subscribers", "import", str(path))
    assert missing.exit_code == 1
    assert "lacks policy_version" in missing.output and "--policy-version V" in missing.output
    unknown = cli("subscribers", "import", str(path), "--policy-version", "1999-01-01")
    assert unknown.exit_code == 1 and "--policy-version '1999-01-01' is unknown" in unknown.output
    assert audience.stats(store)["active"] == 0
    good = cli("subscribers", "import", str(path), "--policy-version", "2026-05-01")
    assert good.exit_code == 0, good.output
    (anna,) = audience.audience(store)
    assert anna.email == "anna@example.com"


def test_blank_lines_are_skipped_with_a_default_policy_version(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    """--policy-version fills empty policy cells, but a blank line stays blank (not a bad row)."""
    path = _write(
        tmp_path,
        "email,consented_at,policy_version\n"
        "anna@example.com,2026-10-02T08:15:00Z,\n\n"
        "kim@example.com,2026-10-03T08:15:00Z,\n,,\n",
    )
    result = cli("subscribers", "import", str(path), "--policy-version", "2026-05-01")
    assert result.exit_code == 0, result.output
    assert "imported 2 (2 active, 0 pending), suppressed 0, merged 0, invalid 0 (2 rows" in (
        result.output
    )
    assert sorted(s.email or "" for s in audience.audience(store)) == [
        "anna@example.com",
        "kim@example.com",
    ]


def test_errors_are_listed_in_file_order(cli: Cli, store: Store) -> None:
    result = cli("subscribers", "import", str(SIGNUPS), "--skip-invalid")
    listed = [x for x in result.output.splitlines() if x.startswith(f"{SIGNUPS}: line ")]
    numbers = [int(x.split("line ")[1].split(":")[0]) for x in listed]
    assert numbers == [4, 5]  # a merged duplicate, an invalid address (line 6 is pending)


def test_a_dry_run_exits_as_the_import_would(cli: Cli, store: Store) -> None:
    dry = cli("subscribers", "import", str(SIGNUPS), "--dry-run")
    assert cli("subscribers", "import", str(SIGNUPS), "--dry-run", "--skip-invalid").exit_code == 0
    assert audience.stats(store)["active"] == 0
    real = cli("subscribers", "import", str(SIGNUPS))
    assert real.exit_code == dry.exit_code == 1
    assert "1 bad row would be left out (named above), the rest imported" in dry.output


def test_a_file_without_line_breaks_is_refused_in_bounded_memory(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.write(b"email,consented_at,policy_version\n")
        for _ in range(20):  # 20 MB on one line
            handle.write(b"a" * 1_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(SubscriberError, match=r"huge.csv:2: a line longer than 65,536 bytes"):
            generic.import_csv(store, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES + 1_000_000, f"peak {peak:,} bytes"


def test_the_ip_column_must_hold_an_address(cli: Cli, store: Store, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "email,consented_at,policy_version,ip\n"
        "anna@example.com,2026-10-02T08:15:00Z,2026-05-01,203.0.113.7\n"
        "kim@example.com,2026-10-02T08:15:00Z,2026-05-01,2001:db8::1\n"
        "jo@example.com,2026-10-02T08:15:00Z,2026-05-01,<script>alert(1)</script>\n",
    )
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "line 4: j***@example.com: ip '<script>alert(1)</script>' is not an IPv4" in (
        result.output
    )


def test_an_address_with_replacement_characters_is_refused(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "email,consented_at,policy_version\n"
        "\ufffd\ufffd\ufffd@example.com,2026-10-02T08:15:00Z,2026-05-01\n",
    )
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "line 2: the address holds U+FFFD replacement characters" in result.output


def test_a_file_that_is_not_utf8_names_its_line(cli: Cli, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "cp1251.csv"
    path.write_bytes(
        b"email,name,consented_at,policy_version\n"
        b"anna@example.com,Anna,2026-10-02T08:15:00Z,2026-05-01\n"
        + "ivan@example.com,Иван,2026-10-02T08:15:00Z,2026-05-01\n".encode("cp1251")
    )
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert f"{path}:3: not UTF-8 text (byte 0xc8 at column 18); save the CSV as UTF-8" in (
        result.output
    )


def test_a_damaged_zip_names_the_file_and_says_what_to_do(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    import zipfile

    path = tmp_path / "members_export_0a1b2c.zip"
    rows = "Email Address,First Name\n" + "".join(
        f"reader{n}@example.com,Reader\n" for n in range(50)
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("subscribed_members_export_0a1b2c.csv", rows)
    data = bytearray(path.read_bytes())
    spot = data.index(b"reader40@")
    data[spot] = ord("R")  # the stored bytes no longer match the member's CRC
    path.write_bytes(bytes(data))
    result = cli("subscribers", "import", "--from", "mailchimp", str(path))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "the file is damaged, export it again" in result.output
    assert audience.stats(store)["active"] == 0  # nothing half-written


def test_a_metadata_cell_of_the_wrong_shape_is_a_note_not_a_crash(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    source = (FIXTURES / "exports" / "buttondown" / "subscribers.csv").read_text()
    header, first, *rest = source.splitlines(keepends=True)
    broken = first.rstrip("\n").rsplit(",", 1)[0] + ',"{[1]: 2}"\n'
    path = _write(tmp_path, header + broken + "".join(rest), "subscribers.csv")
    result = cli("subscribers", "import", "--from", "buttondown", str(path))
    assert "Traceback" not in result.output
    assert "is not a dict" in result.output, result.output


def test_a_consent_time_out_of_range_is_refused_naming_it(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "email,consented_at,policy_version\n"
        "old@example.com,0001-01-01T00:00:00+01:00,2026-05-01\n"
        "ok@example.com,2026-10-02T08:15:00Z,2026-05-01\n",
    )
    result = cli("subscribers", "import", str(path))
    assert "Traceback" not in result.output
    assert f"{path}: line 2: consented_at '0001-01-01T00:00:00+01:00'" in result.output
