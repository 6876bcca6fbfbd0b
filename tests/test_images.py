"""Article images: their size read at `digest add` time, and the box the email shows them in."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from _render_fixtures import ISSUE_DAY, sample_issue, write_issue

from digest.curate import add_url
from digest.images import dimensions
from digest.issue import Article, workspace_issue
from digest.render import COLUMN_WIDTH, MAX_IMAGE_HEIGHT, Recipient, image_box, prepare
from digest.samples import SampleSite, sample_folder
from digest.workspace import Workspace

SAMPLE_IMAGES = sample_folder() / "img"


def png(width: int, height: int) -> bytes:
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_sizes_read_from_the_first_bytes() -> None:
    assert dimensions(png(33, 17)) == (33, 17)
    assert dimensions(b"GIF89a" + struct.pack("<HH", 640, 480) + b"\x00" * 20) == (640, 480)
    jpeg = (SAMPLE_IMAGES / "tula.jpg").read_bytes()
    assert dimensions(jpeg) == (800, 1000)
    assert dimensions((SAMPLE_IMAGES / "rapprochement.jpg").read_bytes()[:2048]) == (1200, 630)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x0a\x00\x00\x00" + b"\x00" * 4
    vp8x += (1199).to_bytes(3, "little") + (629).to_bytes(3, "little")
    assert dimensions(vp8x) == (1200, 630)
    bits = (800 - 1) | ((1000 - 1) << 14)
    vp8l = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + bits.to_bytes(4, "little")
    assert dimensions(vp8l) == (800, 1000)


@pytest.mark.parametrize(
    "data",
    [b"", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\xff\xd8\xff\xe0\x00", b"GIF89a\x00"],
)
def test_an_unreadable_header_gives_no_size(data: bytes) -> None:
    assert dimensions(data) is None


def test_a_jpeg_cut_before_its_frame_header_gives_no_size() -> None:
    jpeg = (SAMPLE_IMAGES / "tula.jpg").read_bytes()
    frame = re.search(rb"\xff\xc0", jpeg).start()
    assert dimensions(jpeg[: frame + 4]) is None


PAGE = """<!DOCTYPE html><html><head><title>{title}</title>
<meta property="og:title" content="{title}">
<meta property="og:image" content="/img/{image}">{extra}
</head><body><p>Text.</p></body></html>"""


@pytest.fixture
def image_site(tmp_path: Path):
    folder = tmp_path / "site"
    (folder / "articles").mkdir(parents=True)
    (folder / "img").mkdir()
    (folder / "img" / "tall.jpg").write_bytes((SAMPLE_IMAGES / "tula.jpg").read_bytes())
    (folder / "img" / "wide.png").write_bytes(png(1200, 600))
    pages = {
        "stated.html": PAGE.format(
            title="Stated",
            image="tall.jpg",
            extra='<meta property="og:image:width" content="1080">'
            '<meta property="og:image:height" content="1350">',
        ),
        "measured.html": PAGE.format(title="Measured", image="tall.jpg", extra=""),
        "png.html": PAGE.format(title="Png", image="wide.png", extra=""),
        "missing.html": PAGE.format(title="Missing", image="nowhere.jpg", extra=""),
    }
    for name, text in pages.items():
        (folder / "articles" / name).write_text(text, encoding="utf-8")
    with SampleSite(folder) as site:
        yield site


def test_add_records_the_image_size(workspace: Workspace, image_site: SampleSite) -> None:
    sizes = {}
    for name in ("stated", "measured", "png", "missing"):
        added = add_url(workspace, f"{image_site.url}/articles/{name}.html", issue_date=None)
        sizes[name] = added.article.image_size
    # og:image:width/height when the page gives them (the file is not asked for) ...
    assert sizes["stated"] == "1080x1350"
    # ... else read from the image's first bytes; an image that is not there: no size.
    assert sizes["measured"] == "800x1000" and sizes["png"] == "1200x600"
    assert sizes["missing"] == ""
    issue = workspace_issue(workspace)
    assert [a.image_size for a in issue.articles if a.image_size] == [
        "1080x1350",
        "800x1000",
        "1200x600",
    ]
    assert "image_size: 800x1000" in issue.path.read_text(encoding="utf-8")


def test_image_boxes_fit_the_column_and_cap_tall_pictures() -> None:
    def box(size: str) -> tuple[int, int]:
        shown = image_box(
            Article(url="https://x.example/", image="https://x.example/i.jpg", image_size=size)
        )
        return shown.width, shown.height

    assert box("1200x630") == (COLUMN_WIDTH, 281)  # scaled to the column
    assert box("300x200") == (300, 200)  # never enlarged
    assert box("800x1000") == (288, MAX_IMAGE_HEIGHT)  # portrait: narrower, capped
    assert box("400x4000") == (36, MAX_IMAGE_HEIGHT)
    assert box("") == (COLUMN_WIDTH, 0) and box("wide") == (COLUMN_WIDTH, 0)


def test_the_email_carries_the_image_box(workspace: Workspace) -> None:
    issue = sample_issue(4)
    issue.articles[0].image = "https://news.example.com/img/tall.jpg"
    issue.articles[0].image_size = "800x1000"
    issue.articles[1].image = "https://news.example.com/img/plain.jpg"
    write_issue(workspace, issue)
    html = prepare(workspace, workspace_issue(workspace, ISSUE_DAY)).html(
        Recipient("1", "ann@example.com")
    )
    tall = re.search(r'<img [^>]*src="https://news.example.com/img/tall.jpg"[^>]*>', html).group()
    assert 'width="288"' in tall and 'height="360"' in tall and "max-width:288px" in tall
    assert "height:auto" in tall and "width:100%" in tall
    plain = re.search(r'<img [^>]*src="https://news.example.com/img/plain.jpg"[^>]*>', html).group()
    assert 'width="536"' in plain and "height=" not in plain.replace("line-height", "")
    # No attribute copied from CSS by the inliner: no height="auto", no <body width>.
    assert (
        'height="auto"' not in html
        and 'width="100%"' not in re.search(r"<body[^>]*>", html).group()
    )


def test_a_jpeg_turned_by_its_exif_orientation_is_measured_as_shown() -> None:
    jpeg = (SAMPLE_IMAGES / "rapprochement.jpg").read_bytes()  # stored 1200x630
    for order, pack in ((b"II", "<"), (b"MM", ">")):
        entry = struct.pack(pack + "HHIH2x", 0x0112, 3, 1, 6)  # Orientation 6: turned 90°
        tiff = order + struct.pack(pack + "HI", 42, 8) + struct.pack(pack + "H", 1) + entry
        tiff += b"\x00\x00\x00\x00"
        app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
        assert dimensions(jpeg[:2] + app1 + jpeg[2:]) == (630, 1200)


def test_an_image_given_by_hand_is_measured(workspace: Workspace, image_site: SampleSite) -> None:
    added = add_url(
        workspace,
        f"{image_site.url}/articles/stated.html",
        overrides={"image": f"{image_site.url}/img/wide.png"},
    )
    # Not the page's stated 1080x1350: that was the size of the page's own image.
    assert added.article.image_size == "1200x600"
