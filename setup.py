"""Build glue for the C extensions (everything else is declared in pyproject.toml).

`heron.metrics._rwdecode` decodes remote-write requests and `heron.metrics._idmap` runs the
probing loops of the ingest path's id tables (see each source's header). Both are optional:
without a compiler the install still succeeds and the pure Python/numpy code is used, but
tests/metrics/test_native.py fails unless HERON_NO_NATIVE=1, so CI never measures the fallback
by accident. `pip install -e .` builds them in place (next to their sources; .gitignored);
rebuild after editing a C source (heron.metrics.native does not load a stale build).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup


def extension(module: str) -> Extension:
    here = Path(__file__).parent / "src/heron/metrics"
    source = f"src/heron/metrics/{module}.c"
    headers = sorted(here.glob(f"{module}_*.h"))  # included by the source only
    # The build remembers its source: heron.metrics.native does not load a build of another
    # version of it (a pull without a re-install). The same digest as native.source_digest.
    sha = hashlib.sha256()
    for path in [here / f"{module}.c", *headers]:
        sha.update(path.read_bytes())
    digest = sha.hexdigest()[:16]
    return Extension(f"heron.metrics.{module}", [source], depends=[str(h.relative_to(Path(__file__).parent)) for h in headers],
                     define_macros=[("SOURCE_DIGEST", f'"{digest}"')],
                     extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
                     optional=True)


setup(ext_modules=[extension("_rwdecode"), extension("_idmap")])
