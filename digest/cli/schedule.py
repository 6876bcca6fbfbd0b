"""Commands about the weekly slot: schedule (status, cron, systemd) and scheduler."""

from __future__ import annotations

import logging

import click

from digest import clock
from digest.cli.common import HelpGroup, echo_json, workspace_of
from digest.cli.stopping import stop_on_signals
from digest.schedule import loop, recipes, view


@click.group(cls=HelpGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def schedule(ctx: click.Context, as_json: bool) -> None:
    """Show the next slot, the issue it sends, its audience and any warnings."""
    if ctx.invoked_subcommand is not None:
        return
    ws = workspace_of(ctx)
    now = clock.now()
    slot = view.upcoming(
        ws, now, check=view.default_check, audience=lambda: view.current_audience(ws)
    )
    if as_json:
        echo_json(slot.to_dict(ws.config.schedule))
    else:
        click.echo(view.format_view(slot, ws.config.schedule, now))


@schedule.command("cron")
@click.option(
    "--every", type=click.IntRange(1, 59), default=5, show_default=True, help="Run every N minutes."
)
@click.pass_context
def schedule_cron(ctx: click.Context, every: int) -> None:
    """Print a crontab entry that runs `digest send --due` for this workspace."""
    click.echo(recipes.cron_entry(workspace_of(ctx), every), nl=False)


@schedule.command("systemd")
@click.option(
    "--every", type=click.IntRange(1, 59), default=5, show_default=True, help="Run every N minutes."
)
@click.pass_context
def schedule_systemd(ctx: click.Context, every: int) -> None:
    """Print a systemd service and timer that run `digest send --due` for this workspace."""
    units = recipes.systemd_units(workspace_of(ctx), every)
    for name, text in units.items():
        click.echo(f"# --- /etc/systemd/system/{name} ---")
        click.echo(text)
    names = " ".join(units)
    click.echo(f"# then: systemctl daemon-reload && systemctl enable --now {names.split()[-1]}")


@click.command()
@click.pass_context
def scheduler(ctx: click.Context) -> None:
    """Send each issue when due, in the foreground (containers, systemd); stop with SIGTERM."""
    ws = workspace_of(ctx)
    handler = logging.StreamHandler()
    # stamped by digest's clock in the schedule's zone: under --now, the rehearsed time
    handler.setFormatter(
        clock.LogFormatter("%(asctime)s %(name)s: %(message)s", ws.config.schedule.zone)
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    def notice(signum: int) -> None:
        logging.getLogger("digest.scheduler").info("signal %d: stopping", signum)

    with stop_on_signals(notice) as stop:
        loop.run_scheduler(ws, stop)
