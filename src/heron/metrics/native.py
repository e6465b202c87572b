"""Loading Heron's C extensions (`heron.metrics._rwdecode`, `heron.metrics._idmap`).

Each is optional: `pip install` builds it when a compiler is there (setup.py), and the pure
Python/numpy code runs otherwise. A build is used only when it matches: its ABI_VERSION is the
one the Python side expects, and the source it was built from (setup.py compiles the digest in)
is the source next to it, so a pull without a re-install falls back instead of running stale C.
HERON_NO_NATIVE=1 turns every extension off (tests/metrics/test_native.py then checks that
nothing native is used; without it, that a missing or stale build fails the suite).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType

SOURCES = {"_rwdecode": "_rwdecode.c", "_idmap": "_idmap.c"}  # module -> its C source, here


def disabled() -> bool:
    return os.environ.get("HERON_NO_NATIVE", "") == "1"


def source_digest(module: str) -> str:
    """The digest setup.py compiles into a build of `module`: SHA-256 of its source, then of its
    headers (`<module>_*.h`) in name order, first 16 hex digits."""
    here = Path(__file__).parent
    sha = hashlib.sha256()
    for path in [here / SOURCES[module], *sorted(here.glob(f"{module}_*.h"))]:
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def load(module: str, abi: int) -> ModuleType | None:
    """heron.metrics.<module>, or None: disabled, not built, another ABI, or built from other source."""
    if disabled():
        return None
    try:
        mod = importlib.import_module(f"heron.metrics.{module}")
    except ImportError:
        return None
    if getattr(mod, "ABI_VERSION", None) != abi:
        return None
    digest = getattr(mod, "SOURCE_DIGEST", "")
    if digest and Path(__file__).with_name(SOURCES[module]).exists() and source_digest(module) != digest:
        return None
    return mod
