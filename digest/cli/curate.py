"""Commands that collect articles: add, feed, candidates, pick."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
