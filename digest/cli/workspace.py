"""Commands about the workspace itself: init, demo."""

from __future__ import annotations

from pathlib import Path

import click

from digest.translations import catalog
from digest.workspace import init_workspace


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--name", help="The newsletter's name (default: The Weekly Brief).")
@click.option(
    "--language",
    metavar="TAG",
    help="The readers' language, e.g. ru, de, pt-BR or ar (default: en); names the sections in it.",
)
def init(directory: Path, name: str | None, language: str | None) -> None:
    """Make a new workspace in DIRECTORY (default: here). Never overwrites a file.

    It holds digest.toml (every setting shown with its default), issues/,
    templates/, subscribers/ (git-ignored: personal data) and outbox/, where
    the default sender writes messages instead of mailing them.
    """
    made = init_workspace(directory, name, language)
    for path in made:
        click.echo(f"created {path}")
    if language and not catalog(language).covered:
        click.echo(
            f"note: digest ships no {language!r} catalog; readers see digest's own words in "
            f"English until you add one (`digest translations init {language}`)"
        )
    click.echo(f"Next: edit {directory / 'digest.toml'}, then `digest issue new`.")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), required=False)
def demo(directory: Path | None) -> None:
    """Run the whole path on sample material, offline, in a new workspace.

    It serves sample article pages and a feed on loopback, curates an issue
    from them, renders and checks it, signs up sample readers with recorded
    consent, and sends the issue to the outbox/ folder: nothing is mailed.
    DIRECTORY defaults to a new folder under the system's temporary folder
    ($TMPDIR, else /tmp), named at the start: nothing is written where you run it.
    """
    from digest.demo import demo_folder, run_demo  # deferred: the whole flow, for this command

    run_demo(directory or demo_folder(), echo=click.echo)
