"""Markdown as written text, for the text part of an email.

Emphasis loses its asterisks, lists stay lists (``-`` and ``1.``), quotes
get ``>``, and each link's URL goes on a line of its own right after the
link's text, so a mail app can make it clickable and a reader can copy it.
Paragraphs are wrapped at 78 characters; a URL is never split, whatever
its length (a line holding only a URL may be longer than 78).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

WIDTH = 78
MAX_LINE = 998
_PUNCTUATION = re.compile(r"^[.,;:!?)\]»”’]+(?=\s|$)")


@dataclass(frozen=True)
class _Line:
    text: str
    url: bool = False  # a URL line: never wrapped or joined


def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False})


_MD: Any = None


def markdown_to_text(source: str, width: int = WIDTH) -> str:
    """``source`` (CommonMark, raw HTML shown as text) as plain text wrapped at ``width``."""
    global _MD
    if not source.strip():
        return ""
    if _MD is None:
        _MD = _parser()
    from markdown_it.tree import SyntaxTreeNode

    tree = SyntaxTreeNode(_MD.parse(source))
    blocks = _blocks(tree.children, width)
    return "\n\n".join(blocks).strip("\n")


def _blocks(nodes: list[Any], width: int) -> list[str]:
    out: list[str] = []
    for node in nodes:
        text = _block(node, width)
        if text is not None and text.strip():
            out.append(text)
    return out


def _block(node: Any, width: int) -> str | None:
    kind = node.type
    if kind in ("paragraph", "heading"):
        lines = _inline(node.children[0] if node.children else None)
        return _wrap_lines(lines, width)
    if kind in ("bullet_list", "ordered_list"):
        items = []
        start = int(node.attrs.get("start", 1)) if kind == "ordered_list" else 1
        for number, item in enumerate(node.children, start):
            marker = f"{number}. " if kind == "ordered_list" else "- "
            body = "\n\n".join(_blocks(item.children, max(width - len(marker), 20)))
            items.append(_indent(body, marker, " " * len(marker)))
        return "\n".join(items)
    if kind == "blockquote":
        body = "\n\n".join(_blocks(node.children, max(width - 2, 20)))
        return _indent(body, "> ", "> ").replace("> \n", ">\n")
    if kind in ("code_block", "fence"):
        return "\n".join("    " + line for line in node.content.rstrip("\n").split("\n"))
    if kind == "hr":
        return "-" * 24
    if kind == "html_block":
        return node.content.strip()
    return "\n\n".join(_blocks(node.children, width)) if node.children else None


def _indent(body: str, first: str, rest: str) -> str:
    lines = body.split("\n")
    return "\n".join(
        (first if i == 0 else rest if line else rest.rstrip()) + line
        for i, line in enumerate(lines)
    )


def _inline(node: Any) -> list[_Line]:
    """The inline content as lines of text and lines holding one URL each."""
    lines: list[_Line] = []
    buffer: list[str] = []
    after_text = [False]  # the last line is a link's URL, after a line of text

    def flush() -> None:
        text = " ".join("".join(buffer).split())
        buffer.clear()
        if text:
            lines.append(_Line(text))

    def walk(children: list[Any]) -> None:
        for child in children:
            kind = child.type
            if kind == "text":
                text = child.content
                match = _PUNCTUATION.match(text)
                if match and not buffer and after_text[0] and lines[-1].url:
                    # "[essay](url)." reads "essay." and then the URL.
                    lines[-2] = _Line(lines[-2].text + match.group())
                    text = text[match.end() :]
                after_text[0] = False
                buffer.append(text)
            elif kind == "softbreak":
                buffer.append(" ")
            elif kind == "hardbreak":
                flush()
            elif kind == "code_inline":
                buffer.append(child.content)
            elif kind == "link":
                href = child.attrs.get("href", "")
                start = len(buffer)
                walk(child.children)
                label = " ".join("".join(buffer[start:]).split())
                bare = label in (href, href.removeprefix("mailto:"))
                if bare:
                    del buffer[start:]
                flush()
                after_text[0] = bool(lines) and not lines[-1].url
                lines.append(_Line(str(href), url=True))
            elif kind == "image":
                alt = " ".join(child.content.split()) or "image"
                buffer.append(f"[{alt}]")
            elif child.children:
                walk(child.children)  # em, strong, s: their text without markers
            else:
                buffer.append(child.content)

    if node is not None:
        walk(node.children)
    flush()
    return lines


def _wrap_lines(lines: list[_Line], width: int) -> str:
    out: list[str] = []
    for line in lines:
        if line.url:
            out.append(line.text)
            continue
        out.extend(wrap_line(line.text, width))
    return "\n".join(out)


def wrap_line(text: str, width: int = WIDTH) -> list[str]:
    """One line of text wrapped at ``width`` without breaking a word (or a URL) in two.

    Its indent is kept on every line; only a piece over 998 characters, the
    limit of a line in an email, is cut.
    """
    text = text.rstrip()
    if len(text) <= width:
        return [text]
    indent = text[: len(text) - len(text.lstrip())]
    pieces = textwrap.wrap(
        text,
        width=width,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    out: list[str] = []
    for piece in pieces:
        while len(piece) > MAX_LINE:
            out.append(piece[:MAX_LINE])
            piece = piece[MAX_LINE:]
        out.append(piece)
    return out
