from __future__ import annotations

from datetime import datetime

from textual.widgets import Static

from drtui.core.clock import format_duration
from drtui.tui.format import utc


class RtoTimer(Static):
    """Elapsed time against the RTO objective: green, amber past 75 %, red past 100 %; and a projected finish."""

    DEFAULT_CSS = """
    RtoTimer { height: auto; padding: 0 1; }
    RtoTimer.-ok { color: $success; }
    RtoTimer.-warn { color: $warning; }
    RtoTimer.-over { color: $error; }
    """

    def show(self, elapsed: float, objective: float | None, projected: datetime | None, finished: bool,
             ok: bool | None = None) -> None:
        """`ok` False: the run failed, so nothing was restored in time whatever the clock says (never green)."""
        share = elapsed / objective if objective else 0.0
        failed = finished and ok is False
        self.set_class(share <= 0.75 and not failed, "-ok")
        self.set_class(0.75 < share <= 1.0 and not failed, "-warn")
        self.set_class(share > 1.0 or failed, "-over")
        label = "ok" if share <= 0.75 else "near the objective" if share <= 1.0 else "over the objective"
        symbol = "✔" if share <= 0.75 else "▲" if share <= 1.0 else "✘"
        if failed:
            symbol, label = "✘", "not restored"
        width = 20
        filled = min(width, int(share * width)) if objective else 0
        bar = "█" * filled + "░" * (width - filled)
        line = f"RTO {format_duration(elapsed)} of {format_duration(objective)}\n{bar} {share:4.0%}\n{symbol} {label}"
        if finished and not failed:
            line += " · achieved"
        elif projected is not None:
            line += f" · finish ~{utc(projected)[11:19]}"
        self.update(line)
