"""A stand-in for ``culbench run --step K`` in the fan-out tests: prints progress lines as culbench
does off a terminal (``1234/10000 12%``) for ``K * 100`` training steps at 100 steps a second,
after a 0.5 s warm-up, then exits 0. Step 0 prints nothing and exits at once."""

from __future__ import annotations

import sys
import time

step = int(sys.argv[sys.argv.index("--step") + 1])
total, rate = step * 100, 100.0
time.sleep(0.5 if step else 0.0)
began = time.monotonic()
while step:
    done = min(total, int((time.monotonic() - began) * rate))
    print(f"[00:00:01] fake on toy10@1 0/1 | fake: training {done}/{total} {100 * done // total}%", flush=True)
    if done >= total:
        break
    time.sleep(0.25)
