"""How each reported metric is read: its column label, which direction is better, the decimals
it is shown with and whether it ranks the leaderboard — declared once, beside the metrics.

``METRICS`` lists the metrics a leaderboard table or ``culbench report`` shows, in column order;
``key`` is the metric's name in a run's ``summary.json`` (``metrics``, ``quality``, ``oracle``
or ``compute``; ``probe_*`` columns come from the runs' probe records,
``culbench.leaderboard.probes``). The leaderboard ranks by the one metric marked ``rank``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """One reported metric: summary ``key``, column ``label``, whether higher is better, the
    decimals shown (rates and AUCs: 3; KID: 4; FID, CLIP and seconds at the precision they carry) and
    whether it is the rank key (the headline).

    >>> info = MetricInfo("collateral_damage", "Collateral", higher_is_better=False)
    >>> info.direction, info.heading
    (-1, 'Collateral ↓')
    """

    key: str
    label: str
    higher_is_better: bool
    digits: int = 3
    rank: bool = False

    @property
    def direction(self) -> int:
        """+1 when higher is better, −1 when lower is."""
        return 1 if self.higher_is_better else -1

    @property
    def heading(self) -> str:
        """The column heading: the label and an arrow pointing at the better direction."""
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("ua_cumulative", "UA cum", higher_is_better=True),
    MetricInfo("retention_related", "Ret near", higher_is_better=True),
    MetricInfo("retention_general", "Ret far", higher_is_better=True),
    MetricInfo("retention_in_domain", "Ret in-dom", higher_is_better=True),
    MetricInfo("retention_cross_domain", "Ret cross-dom", higher_is_better=True),
    MetricInfo("retention_related_held_out", "Ret near held-out", higher_is_better=True),
    MetricInfo("retention_general_held_out", "Ret far held-out", higher_is_better=True),
    MetricInfo("re_emergence_max", "Re-emerg", higher_is_better=False),
    MetricInfo("probe_paraphrase", "Paraphrase P", higher_is_better=False),
    MetricInfo("probe_attack", "Attack success", higher_is_better=False),
    MetricInfo("probe_relearn_auc", "Relearn AUC", higher_is_better=False),
    MetricInfo("probe_relearn_gap", "Relearn gap oracle", higher_is_better=False),
    MetricInfo("collateral_damage", "Collateral", higher_is_better=False),
    MetricInfo("auc_ua_cumulative", "AUC UA", higher_is_better=True),
    MetricInfo("auc_retention_general", "AUC Ret far", higher_is_better=True),
    MetricInfo("headline_h", "H", higher_is_better=True, rank=True),
    MetricInfo("headline_h_given", "H given", higher_is_better=True),
    MetricInfo("gap_retrain", "Gap retrain", higher_is_better=False),
    MetricInfo("auc_gap_retrain", "AUC gap retrain", higher_is_better=False),
    MetricInfo("fid_retained_vs_base", "FID vs base", higher_is_better=False, digits=1),
    MetricInfo("fid_retained_vs_real", "FID vs real", higher_is_better=False, digits=1),
    MetricInfo("kid_retained_vs_base", "KID vs base", higher_is_better=False, digits=4),
    MetricInfo("kid_retained_vs_real", "KID vs real", higher_is_better=False, digits=4),
    MetricInfo("clip_retained", "CLIP ret", higher_is_better=True, digits=1),
    MetricInfo("unlearn_seconds_median", "s/request", higher_is_better=False, digits=1),
    MetricInfo("peak_rss_mb", "Peak RSS MB", higher_is_better=False, digits=0),
)
METRIC_INFO: dict[str, MetricInfo] = {m.key: m for m in METRICS}
RANK_METRIC: MetricInfo = next(m for m in METRICS if m.rank)
