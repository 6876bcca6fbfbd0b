"""The Stats page: the list and the issues as charts, for the preview and as one HTML file.

The page (``stats.html``) is the same in both places: ``/stats`` in ``digest
preview``, and ``digest stats --html FILE``, which writes it as one
self-contained file (its CSS inline, the charts inline SVG, no script, nothing
fetched) that an editor can mail to the newsroom.

The charts are drawn on the server by pygal as SVG, and only the numbers of
:func:`digest.store.stats.collect` go into them. The template names every
chart, series and label (:class:`Charts` takes them as arguments), so the
words stay in the template. Each chart is drawn twice, for a wide and a
narrow screen (the page shows one by a media query), so its text stays
readable on a phone; text and axes take the page's colour (``currentColor``),
so one drawing serves the light and the dark scheme.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from digest import __version__
from digest.atomic import write_text
from digest.errors import DigestError, WorkspaceError
from digest.store import open_store
from digest.store.stats import DEFAULT_WEEKS, MAX_WEEKS, Stats, collect
from digest.workspace import Workspace

HERE = Path(__file__).parent
CSS = HERE / "static" / "stats.css"

# Series colours: mid tones that read on a white and on a near-black page.
BLUE, TEAL, AMBER, RED, PURPLE, GREEN, SLATE = (
    "#3b82f6",
    "#14b8a6",
    "#f59e0b",
    "#ef4444",
    "#a855f7",
    "#22a06b",
    "#64748b",
)
WIDE = {"width": 880, "height": 340, "font": 13}
NARROW = {"width": 400, "height": 330, "font": 13}
# What pygal writes whatever the options: its comments, a script holding its config
# (for its tooltips, which need its JavaScript: left out) and the title "Pygal".
_UNWANTED = re.compile(r"<!--.*?-->|<script\b.*?</script>|<title>Pygal</title>", re.S)

_pages = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _short(day: date) -> str:
    return f"{day.day} {day:%b}"


def _number(value: int) -> str:
    return f"{value:,}"


def _took(seconds: int | None) -> str:
    if seconds is None:
        return "not finished"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


_pages.filters["short"] = _short
_pages.filters["number"] = _number
_pages.filters["took"] = _took


class Charts:
    """The page's charts, drawn from ``stats``; the template gives every word."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def list_size(self, *, series: str) -> Markup:
        """Active readers at the end of each week: a filled line."""
        values = [w.active for w in self.stats.weeks]
        return self._both(
            "Line",
            labels=[_short(w.start) for w in self.stats.weeks],
            series=[(series, values, BLUE)],
            options={"fill": True, "show_dots": len(values) <= 16, "dots_size": 3},
        )

    def flows(
        self,
        *,
        confirmed: str,
        added: str,
        unsubscribed: str,
        bounced: str,
        complained: str,
    ) -> Markup:
        """Who came (above the line) and who left (below), week by week, as stacked bars."""
        weeks = self.stats.weeks
        series = [
            (confirmed, [w.confirmed for w in weeks], BLUE),
            (added, [w.added for w in weeks], TEAL),
            (unsubscribed, [-w.unsubscribed for w in weeks], AMBER),
            (bounced, [-w.bounced for w in weeks], RED),
            (complained, [-w.complained for w in weeks], PURPLE),
        ]
        return self._both(
            "StackedBar",
            labels=[_short(w.start) for w in weeks],
            series=series,
        )

    def deliveries(self, *, sent: str, failed: str, unknown: str, waiting: str) -> Markup:
        """Each issue's audience split into sent, failed, unknown and waiting: stacked bars."""
        issues = self.stats.issues
        series = [
            (sent, [i.sent for i in issues], GREEN),
            (failed, [i.failed + i.skipped for i in issues], RED),
            (unknown, [i.unknown for i in issues], AMBER),
            (waiting, [i.waiting for i in issues], SLATE),
        ]
        return self._both("HorizontalStackedBar", [i.issue for i in issues], series, rows=True)

    def returns(self, *, hard: str, soft: str, complaints: str, unsubscribes: str) -> Markup:
        """What came back from each issue: bounces, complaints, unsubscribes, side by side."""
        issues = self.stats.issues
        series = [
            (hard, [i.hard_bounces for i in issues], RED),
            (soft, [i.soft_bounces for i in issues], AMBER),
            (complaints, [i.complaints for i in issues], PURPLE),
            (unsubscribes, [i.unsubscribes for i in issues], BLUE),
        ]
        return self._both("HorizontalBar", [i.issue for i in issues], series, rows=True)

    def reasons(self, *, labels: Mapping[str, str], series: str) -> Markup:
        """The answers to "why are you leaving?", one bar per reason, most given first."""
        counted = sorted(self.stats.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        return self._both(
            "HorizontalBar",
            [labels.get(key, key) for key, _ in counted],
            [(series, [n for _, n in counted], BLUE)],
            rows=True,
            options={"show_legend": False},
        )

    # drawing ------------------------------------------------------------------------------

    def _both(
        self,
        kind: str,
        labels: Sequence[str],
        series: Sequence[tuple[str, list[int], str]],
        *,
        rows: bool = False,
        options: dict[str, Any] | None = None,
    ) -> Markup:
        """The chart for a wide screen and for a narrow one; the page shows one of them."""
        wide = _draw(kind, labels, series, WIDE, rows, options or {})
        narrow = _draw(kind, labels, series, NARROW, rows, options or {})
        return Markup(
            f'<div class="chart wide">{wide}</div><div class="chart narrow">{narrow}</div>'
        )


def _draw(
    kind: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, list[int], str]],
    size: dict[str, int],
    rows: bool,
    options: dict[str, Any],
) -> str:
    pygal = _pygal()
    from pygal.style import Style

    font = size["font"]
    style = Style(
        background="transparent",
        plot_background="transparent",
        foreground="currentColor",
        foreground_strong="currentColor",
        foreground_subtle="rgba(127, 127, 127, 0.35)",
        guide_stroke_color="rgba(127, 127, 127, 0.45)",
        major_guide_stroke_color="rgba(127, 127, 127, 0.6)",
        opacity="0.9",
        opacity_hover="1",
        colors=tuple(colour for _, _, colour in series),
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        label_font_size=font,
        major_label_font_size=font,
        legend_font_size=font,
        value_font_size=font,
        tooltip_font_size=font,
    )
    narrow = size["width"] < 600
    count = len(labels)
    options = {**_value_axis(kind, series), **options}
    height = size["height"]
    if rows:  # one row of bars per label: as tall as it needs
        height = max(160, 90 + count * (34 if len(series) > 1 else 26))
    every = max(1, -(-count // (5 if narrow else 13)))
    columns = min(len(series), 3 if narrow else 5)
    legend_rows = -(-len(series) // columns) if len(series) > 1 else 0
    # pygal leaves room for one row of legend at the bottom; make room for the others.
    extra = max(0, legend_rows - 1) * (font + 10)
    config: dict[str, Any] = dict(
        style=style,
        js=[],
        width=size["width"],
        height=height + extra,
        explicit_size=False,
        disable_xml_declaration=True,
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        legend_at_bottom_columns=columns,
        legend_box_size=font - 1,
        truncate_legend=-1,
        truncate_label=-1,
        x_label_rotation=0,
        show_minor_x_labels=rows or every == 1,
        x_labels_major_every=None if rows else every,
        margin=8,
        margin_bottom=8 + extra,
        margin_right=8 if rows else 8 + 2 * font,  # room for the last label, centred on its tick
        spacing=12,
        min_scale=2,
        max_scale=6,
        include_x_axis=True,
        print_values=False,
    )
    chart = getattr(pygal, kind)(**{**config, **options})
    chart.x_labels = list(labels)
    for name, values, _ in series:
        chart.add(name, values)
    return _UNWANTED.sub("", chart.render(is_unicode=True))


def _pygal() -> Any:
    """pygal, imported on first use: only the Stats page draws charts (start-up stays quick).

    Importing pygal appends a finder for its map plugins to ``sys.meta_path`` that has
    only the API Python deprecated, so every later import in the process warns
    (ImportWarning). digest draws no maps: the finder is taken out again.
    """
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]
    return pygal


def _value_axis(kind: str, series: Sequence[tuple[str, list[int], str]]) -> dict[str, Any]:
    """Whole numbers on the value axis: a step of one for small counts (0 to 10)."""
    columns = list(zip(*(values for _, values, _ in series), strict=True)) or [(0,)]
    if "Stacked" in kind:
        top = max(sum(v for v in column if v > 0) for column in columns)
        bottom = min(sum(v for v in column if v < 0) for column in columns)
    else:
        top = max(max(column) for column in columns)
        bottom = min(0, min(min(column) for column in columns))
    options: dict[str, Any] = {"value_formatter": lambda v: f"{abs(v):,.0f}"}
    if top - bottom <= 10:
        options["y_labels"] = list(range(bottom, max(top, 1) + 1))
        options["range"] = (bottom, max(top, 1))
    return options


# -- the page ----------------------------------------------------------------------------------


def page_html(ws: Workspace, stats: Stats, *, preview: bool) -> str:
    """The Stats page; ``preview`` adds the preview's navigation (absent from the file)."""
    return _pages.get_template("stats.html").render(
        name=ws.config.newsletter.name,
        stats=stats,
        charts=Charts(stats),
        css=Markup(CSS.read_text(encoding="utf-8")),
        preview=preview,
        version=__version__,
    )


def build(ws: Workspace, weeks: int = DEFAULT_WEEKS, *, preview: bool = False) -> str:
    with open_store(ws) as store, store.read() as conn:
        found = collect(conn, ws, weeks)
    return page_html(ws, found, preview=preview)


def write_page(ws: Workspace, path: Path, weeks: int = DEFAULT_WEEKS) -> Path:
    """``digest stats --html FILE``: the page as one self-contained file, written whole."""
    html = build(ws, weeks)
    target = path if path.is_absolute() else Path.cwd() / path
    if target.is_dir():
        raise WorkspaceError(f"{path} is a folder; name the HTML file to write")
    try:
        write_text(target, html)
    except OSError as exc:
        raise WorkspaceError(f"{path}: cannot write the Stats page ({exc.strerror})") from None
    return path


def routes(ws: Workspace, error: Callable[[str], Response]) -> list[BaseRoute]:
    """``/stats`` for the preview; ``error`` shows a problem (the database unreachable)."""

    def stats_page(request: Request) -> Response:
        text = request.query_params.get("weeks", "")
        weeks = int(text) if text.isdigit() else DEFAULT_WEEKS
        try:
            html = build(ws, max(1, min(weeks, MAX_WEEKS)), preview=True)
        except DigestError as exc:
            return error(str(exc))
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    return [Route("/stats", stats_page, name="preview_stats")]
