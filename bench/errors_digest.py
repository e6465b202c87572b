"""The worker side of error processing alone: `heron.errors.digest.digest` on 1 000-record pieces
of realistic 40 KB Python exception envelopes (the ones `errors_ingest.py` sends), in process,
as thread CPU per event and per stage, without HTTP, queue or storage.

    python bench/errors_digest.py [--rounds 6] [--base REV]

`--base REV` compares with another revision in the same process, alternating rounds (on a
machine shared with other work, figures from separate runs are not comparable): the revision's
`src/heron` is extracted with `git archive` and imported as the package `heron_base` (its
`heron` imports rewritten). The Arrow tables both make must be equal. Stage figures come from
wrapping the stage functions (a few µs of wrapper cost each); the totals are measured unwrapped.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from errors_ingest import UniqueBodies  # noqa: E402

import heron.errors.digest as current  # noqa: E402
from heron.errors.scrub import DEFAULT_FIELDS  # noqa: E402

STAGES = (("decompress", "inflate"), ("parse_envelope", "parse"), ("normalize", "normalize"),
          ("group", "group"))


def load_base(rev: str, into: Path) -> ModuleType:
    """`heron.errors.digest` of `rev`, importable next to the current one."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/heron"], check=True,
                          capture_output=True).stdout
    tar_path = into / "base.tar"
    tar_path.write_bytes(data)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    pkg = into / "heron_base"
    (into / "src" / "heron").rename(pkg)
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\b(from|import) heron\b", r"\1 heron_base", text)
        path.write_text(text.replace('"heron.', '"heron_base.'))
    sys.path.insert(0, str(into))
    import heron_base.errors.digest as base  # type: ignore[import-not-found]

    return base


def wrap(obj: Any, name: str, label: str, acc: dict[str, int]) -> None:
    f = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time_ns()
        try:
            return f(*args, **kwargs)
        finally:
            acc[label] = acc.get(label, 0) + time.thread_time_ns() - t

    setattr(obj, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--base", help="a git revision to compare with (same process, alternating)")
    args = ap.parse_args()
    bodies = [UniqueBodies(i) for i in range(100)]
    now = time.time()
    records = [(1, "bench", "envelope", "gzip", "10.0.0.1", now, "", bodies[i % 100].make())
               for i in range(args.records)]
    impls: dict[str, ModuleType] = {"current": current}
    with tempfile.TemporaryDirectory() as tmp:
        if args.base:
            impls = {f"base {args.base[:10]}": load_base(args.base, Path(tmp)), **impls}
        ctxs = {k: m.Context(True, DEFAULT_FIELDS, frozenset(), False, 1 << 20, frozenset())
                for k, m in impls.items()}
        totals: dict[str, list[float]] = {k: [] for k in impls}
        stages: dict[str, dict[str, list[float]]] = {k: {} for k in impls}
        tables = {}
        load0 = Path("/proc/loadavg").read_text().split()[:3]
        for k, m in impls.items():
            m.digest(records[:50], ctxs[k])  # warm-up: imports, memos
        for wrapped in (False, True):
            accs: dict[str, dict[str, int]] = {k: {} for k in impls}
            if wrapped:
                for k, m in impls.items():
                    for fn, label in STAGES:
                        wrap(m, fn, label, accs[k])
                    wrap(m.Item, "json", "loads", accs[k])
                    wrap(m._scrubber(ctxs[k]), "event", "scrub", accs[k])
                    wrap(m.rows, "event_row", "rows", accs[k])
                    wrap(m.rows, "event_table", "rows", accs[k])
            for _ in range(args.rounds):
                for k, m in impls.items():
                    accs[k].clear()
                    t = time.thread_time_ns()
                    d = m.digest(records, ctxs[k])
                    us = (time.thread_time_ns() - t) / 1e3 / len(records)
                    tables[k] = d.tables["error_events"]
                    if wrapped:
                        for label, ns in accs[k].items():
                            stages[k].setdefault(label, []).append(ns / 1e3 / len(records))
                    else:
                        totals[k].append(us)
        load1 = Path("/proc/loadavg").read_text().split()[:3]
    first = next(iter(tables.values()))
    same = all(t.equals(first) for t in tables.values())
    print(f"{'thread CPU µs per 40 KB event (min / median of ' + str(args.rounds) + ')':52}"
          + "".join(f"{k:>24}" for k in impls))
    labels = [label for _, label in STAGES[:2]] + ["loads"] + [label for _, label in STAGES[2:]] + ["scrub", "rows"]
    for label in labels:
        cells = []
        for k in impls:
            v = sorted(stages[k].get(label, [0.0]))
            cells.append(f"{v[0]:>11.1f} / {v[len(v) // 2]:>9.1f}")
        print(f"{'  stage ' + label:52}" + "".join(f"{c:>24}" for c in cells))
    cells = []
    for k in impls:
        v = sorted(totals[k])
        cells.append(f"{v[0]:>11.1f} / {v[len(v) // 2]:>9.1f}")
    print(f"{'digest total (unwrapped)':52}" + "".join(f"{c:>24}" for c in cells))
    if len(impls) == 2:
        (a, b) = (sorted(v) for v in totals.values())
        print(f"{'ratio current / base (min, median)':52}{b[0] / a[0]:>24.2f}{b[len(b) // 2] / a[len(a) // 2]:>24.2f}")
    print(f"(tables {'identical' if same else 'DIFFER'}; {len(records)} records per digest; "
          f"load average {' '.join(load0)} -> {' '.join(load1)}; pid {os.getpid()})")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
