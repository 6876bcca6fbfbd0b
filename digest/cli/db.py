"""Commands about the database: db upgrade, db status."""

from __future__ import annotations

import click

from digest.cli.common import HelpGroup, workspace_of
from digest.store import migrations, open_store


@click.group(cls=HelpGroup)
def db() -> None:
    """Migrate and inspect the subscriber database (SQLite or PostgreSQL)."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (also done automatically on first use)."""
    with open_store(workspace_of(ctx), migrate=False) as store:
        done = store.upgrade()
        for migration in done:
            click.echo(f"applied {migration.version}: {migration.name}")
        click.echo(f"{store.describe()} is up to date" if done else "nothing to do: up to date")


@db.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Show the database URL and each migration, applied (with its time) or pending."""
    with open_store(workspace_of(ctx), migrate=False) as store:
        click.echo(f"database: {store.describe()}")
        for state in migrations.status(store.engine):
            when = f"applied {state.applied_at}" if state.applied_at else "pending"
            click.echo(f"{state.version:>4}  {state.name}  ({when})")
