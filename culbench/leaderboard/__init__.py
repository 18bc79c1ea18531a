"""The leaderboard: comparative tables generated from result files, never edited by hand.

* ``rows``: load ``summary.json`` files and group seeds into rows (one method configuration
  on one sequence@version × profile), with intervals and the gap to the retrain oracle;
* ``tables``: one table per sequence@version × profile, tie-aware ranks, best values;
* ``formats``: Markdown, CSV, JSON and LaTeX renderings and the shared cell format;
* ``html``: the single-file sortable page with its plots inlined;
* ``plots``: per-step curves, presence heat-maps and the trade-off figure (matplotlib);
* ``publish``: regenerate (or check) the committed leaderboard files from the committed results.
"""

from culbench.leaderboard.formats import FORMATS, fmt, render
from culbench.leaderboard.html import render_html
from culbench.leaderboard.rows import Row, final_value, load_rows
from culbench.leaderboard.tables import RANK_KEY, Table, build

__all__ = ["FORMATS", "RANK_KEY", "Row", "Table", "build", "final_value", "fmt", "load_rows", "render",
           "render_html"]
