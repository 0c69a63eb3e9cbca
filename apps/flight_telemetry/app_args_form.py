"""Custom args form of flight_telemetry, with a preview of the metric the run writes back.

``preview_metrics`` predicts, from the args alone, the keys that ``data_out/summary.json`` carries
after RUN, so the dashboard can show the two side by side and a mismatch stands out.
"""
from __future__ import annotations

from typing import Any


def preview_metrics(args: Any) -> dict[str, int]:
    """Metrics known before RUN: every generated sample is aggregated, so ``rows`` is exact."""
    return {"rows": int(args.n_aircraft) * int(args.rows_per_file), "aircraft": int(args.n_aircraft)}


def build_form(args: Any) -> Any:
    """Widgets bound both ways to ``args`` (a FlightTelemetryArgs) and the live preview of ``rows``."""
    import panel as pn  # only the dashboard needs Panel; preview_metrics works without it

    def preview(n_aircraft: int, rows_per_file: int) -> Any:
        rows = preview_metrics(args)["rows"]
        return pn.Column(
            pn.indicators.Number(label="Expected rows (summary.json: rows)", value=rows, format="{value:,}", font_size="28pt"),
            pn.pane.Markdown(
                f"{n_aircraft:,} aircraft × {rows_per_file:,} rows per file, about {rows / 3600:,.0f} flight hours at 1 Hz."
            ),
        )

    return pn.Column(
        pn.pane.Markdown("### Flight telemetry"),
        pn.widgets.IntInput.from_param(args.param.n_aircraft, label="Aircraft (files)"),
        pn.widgets.IntInput.from_param(args.param.rows_per_file, label="Rows per file", step=10_000),
        pn.widgets.IntInput.from_param(args.param.seed, label="Seed"),
        pn.pane.Markdown("File format of the generated input files", margin=(10, 10, 0, 10)),  # groups show no label
        pn.widgets.RadioButtonGroup.from_param(args.param.file_format, label="File format", margin=(0, 10, 5, 10)),
        pn.bind(preview, args.param.n_aircraft, args.param.rows_per_file),
    )
