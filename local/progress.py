"""What a local pipeline run shows: a live table of its tasks, then a summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

COLORS = {"running": "yellow", "succeeded": "green", "cached": "cyan", "skipped": "dim", "failed": "red"}


def table(runner) -> Table:
    t = Table("task", "state", "seconds", title=f"pipeline run {runner.run_id}")
    for record in runner.records.values():
        color = COLORS.get(record.state, "white")
        seconds = f"{record.seconds:.1f}" if record.seconds else ""
        t.add_row(record.name, f"[{color}]{record.state}[/]", seconds)
    return t


class Display:
    """A live table on a terminal; plain lines otherwise (CI logs, pipes)."""

    def __init__(self, runner):
        self.runner = runner
        self.console = Console(stderr=True)
        self.live = (
            Live(table(runner), console=self.console, refresh_per_second=4) if self.console.is_terminal else None
        )

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def update(self, record) -> None:
        if self.live:
            self.live.update(table(self.runner))
        else:
            seconds = f" ({record.seconds:.1f}s)" if record.seconds else ""
            self.console.print(f"{record.name}: {record.state}{seconds}", highlight=False)


def _last_line(log: str) -> str:
    lines = Path(log).read_text(errors="replace").strip().splitlines() if log and Path(log).exists() else []
    return lines[-1] if lines else "no log"


def summary(runner) -> None:
    console = Console()
    console.print(table(runner))
    for record in runner.records.values():
        if record.state == "failed":
            console.print(f"[red]{record.name} failed[/]: {record.reason}\n  log: {record.log}", highlight=False)
        elif record.state == "skipped":
            console.print(f"{record.name} skipped: {record.reason}", highlight=False)
        elif record.parameters.get("blessed") is False:
            # The step's own last line says which check failed where; the run goes on to skip registration.
            console.print(f"[red]{record.name}[/]: {_last_line(record.log)}", highlight=False)
        elif "model_version" in record.parameters:
            console.print(
                f"registered version {record.parameters['model_version']}: {record.parameters.get('model_uri')}"
            )
    console.print(f"outputs and logs under {runner.run_dir}", highlight=False)
