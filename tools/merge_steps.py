"""Merge runs computed elsewhere into a results root: every run under SRC_ROOT (the same relative
path under DST_ROOT) gives the steps that DST's copy lacks (``culbench.runner.merge_run``).
For ``--step`` jobs run on a machine that shares no disk with this one (``gpu_fanout.sh``).

    python tools/merge_steps.py /tmp/gpu-records leaderboard/in-progress
"""

from __future__ import annotations

import sys
from pathlib import Path

from culbench.runner import merge_run


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)  # noqa: T201
        return 2
    src_root, dst_root = map(Path, argv)
    for manifest in sorted(src_root.rglob("manifest.json")):
        run = manifest.parent.relative_to(src_root)
        new = merge_run(manifest.parent, dst_root / run)
        print(f"{run}: {'steps ' + ', '.join(map(str, new)) if new else 'nothing new'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
