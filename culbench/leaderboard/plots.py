"""Figures over result rows (matplotlib, headless): per-step curves, presence heat-maps and
the forgetting-vs-retention trade-off. Every function writes one file and returns its path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from culbench.leaderboard.rows import Row

CURVES: tuple[tuple[str, str], ...] = (
    ("ua_cumulative", "cumulative UA (↑)"),
    ("ua_new", "UA of the new target (↑)"),
    ("retention_related", "near retention (↑)"),
    ("retention_general", "far retention (↑)"),
    ("collateral_damage", "collateral damage (↓)"),
    ("fid_retained_vs_base", "FID vs base, retained (↓)"),
)


def _pyplot():  # -> module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(rows: Sequence[Row], path: Path) -> Path:
    """Small multiples: one panel per metric, one line per row (mean over seeds, band = min–max)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    cols = 3
    fig, axes = plt.subplots(2, cols, figsize=(4.2 * cols, 6.4), squeeze=False)
    for ax, (key, title) in zip(axes.flat, CURVES, strict=False):
        for row in rows:
            data = row.curve(key)
            if data.size == 0 or np.isnan(data).all():
                continue
            start = 1 if key.startswith("ua_") else 0
            x = np.arange(start, start + data.shape[1])
            mean = np.nanmean(data, axis=0)
            line, = ax.plot(x, mean, marker="o", markersize=3, label=f"{row.label} (n={len(row.seeds)})")
            if data.shape[0] > 1:
                ax.fill_between(x, np.nanmin(data, axis=0), np.nanmax(data, axis=0),
                                color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle(f"{rows[0].sequence} · {rows[0].profile}", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return _save(fig, plt, path)


def heatmap(row: Row, path: Path) -> Path:
    """Step × concept presence of a row's first seed, concepts grouped by role."""
    plt = _pyplot()
    summary = min(row.summaries, key=lambda s: s["seed"])
    concepts, roles = summary["concepts"], summary["roles"]
    order = list(summary["forget_order"]) + [c for c in concepts if c not in summary["forget_order"]]
    P = np.array(summary["presence"], dtype=float)[:, [concepts.index(c) for c in order]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.24 * len(order) + 2), 0.32 * P.shape[0] + 2))
    image = ax.imshow(P, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(order)), [f"{c} ({roles[c][0]})" for c in order], rotation=90, fontsize=7)
    ax.set_yticks(range(P.shape[0]), ["base"] + [f"{k}: {c}" for k, c in enumerate(summary["forget_order"], 1)],
                  fontsize=7)
    ax.set_title(f"presence P[k, c] — {row.label}, seed {summary['seed']} "
                 "(f=forget, r=related, g/i/c=general/in-/cross-domain)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    return _save(fig, plt, path)


def _tradeoff_axis(rows: Sequence[Row]) -> list[tuple[str, str | None, str]]:
    """Per panel: the retention shown against UA (the held-out concepts H scores when the rows
    have them), the given concepts' retention drawn beside it (or None) and the axis label."""
    def has(key: str) -> bool:
        return any(row.value(key)[0] is not None for row in rows)

    panels = []
    for side, name in (("related", "near"), ("general", "far")):
        held, given = f"retention_{side}_held_out", f"retention_{side}"
        if has(held):
            panels.append((held, given if has(given) else None, f"{name} retention, held-out concepts (↑)"))
        else:
            panels.append((given, None, f"{name} retention (↑)"))
    return panels


def tradeoff(rows: Sequence[Row], path: Path) -> Path:
    """Final cumulative UA against final near (related) and far (general) retention, one panel
    each, with interval whiskers; where the sequence holds concepts out, the held-out retention
    (what H scores) is the filled marker and the given concepts' retention a hollow one joined to
    it. Reference rows (``tables.is_reference``) are squares, the retrain oracle a star."""
    from culbench.leaderboard.tables import is_reference

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = _tradeoff_axis(rows)
    for ax, (key, given, label) in zip(axes.flat, panels, strict=True):
        for n, row in enumerate(rows):
            ua, ua_lo, ua_hi = row.value("ua_cumulative")
            ret, ret_lo, ret_hi = row.value(key)
            if ua is None or ret is None:
                continue
            colour = colours[n % len(colours)]
            marker = "*" if row.role == "oracle" else "s" if is_reference(row) else "o"
            ax.errorbar([ua], [ret], xerr=[[ua - ua_lo], [ua_hi - ua]], yerr=[[ret - ret_lo], [ret_hi - ret]],
                        fmt=marker, color=colour, markersize=9 if marker == "*" else 6, capsize=3, label=row.label)
            handed = row.value(given)[0] if given else None
            if handed is not None:
                ax.plot([ua, ua], [ret, handed], color=colour, linestyle=":", linewidth=1)
                ax.plot([ua], [handed], marker=marker, color=colour, markerfacecolor="white", linestyle="none")
        ax.set_xlabel("cumulative UA at the last step (↑)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.1)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(handles)), fontsize=8)
    held = any(given for _, given, _ in panels)
    fig.suptitle("forgetting vs retention at the last step" + (" (hollow: the given concepts' retention)"
                                                              if held else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return _save(fig, plt, path)


def restoration(rows: Sequence[Row], path: Path) -> Path | None:
    """The relearning probe's restoration curves: presence of the forgotten concepts against
    fine-tuning steps, one line per row (mean over its runs and concepts, band = min–max over
    runs); ``None`` (no file) when no row has relearn records."""
    from culbench.leaderboard.probes import restoration_curves

    found = [(row, restoration_curves(row)) for row in rows]
    found = [(row, c) for row, c in found if c is not None]
    if not found:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for row, (steps, per_run) in found:
        mean = per_run.mean(axis=0)
        line, = ax.plot(steps, mean, marker="o", markersize=3, label=f"{row.label} (n={len(per_run)})")
        if len(per_run) > 1:
            ax.fill_between(steps, per_run.min(axis=0), per_run.max(axis=0), color=line.get_color(),
                            alpha=0.15, linewidth=0)
    ax.set_xlabel("relearning fine-tune steps")
    ax.set_ylabel("presence of the forgotten concepts")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"restoration under relearning · {rows[0].sequence}", fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
