"""Language tags and the direction their script is written in.

A newsletter's ``[newsletter] language`` and an issue's ``language:`` are
BCP 47 tags (``en``, ``pt-BR``, ``ar``, ``sr-Latn``). The email's ``<html>``
and its article wrapper carry the tag as ``lang`` and the direction as
``dir``; a right-to-left language also mirrors the layout's alignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
# Languages written right to left by default (primary subtag), and scripts
# that are right to left whatever the language.
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ps", "sd", "syr", "ug", "ur", "yi", "nqo"}
)
RTL_SCRIPTS = frozenset({"arab", "hebr", "syrc", "thaa", "nkoo", "adlm", "rohg"})


@dataclass(frozen=True)
class Language:
    code: str
    dir: str  # "ltr" or "rtl"

    @property
    def start(self) -> str:
        """The side lines start on: ``left`` or ``right`` (for align attributes)."""
        return "right" if self.dir == "rtl" else "left"

    @property
    def end(self) -> str:
        return "left" if self.dir == "rtl" else "right"

    @property
    def arrow(self) -> str:
        """An arrow pointing the way the text reads: "→", or "←" right to left."""
        return "\u2190" if self.dir == "rtl" else "\u2192"


def is_tag(text: str) -> bool:
    return bool(TAG.fullmatch(text))


def direction(tag: str) -> str:
    """``rtl`` for a right-to-left language or script, else ``ltr``."""
    parts = tag.lower().split("-")
    for part in parts[1:]:
        if len(part) == 4:  # a script subtag decides
            return "rtl" if part in RTL_SCRIPTS else "ltr"
    return "rtl" if parts[0] in RTL_LANGUAGES else "ltr"


def language(tag: str) -> Language:
    return Language(tag, direction(tag))
