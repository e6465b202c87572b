"""Build glue for the one C extension (everything else is declared in pyproject.toml).

`heron.metrics._rwdecode` decodes remote-write requests (see its source's header). It is optional:
without a compiler the install still succeeds and the pure-Python decoder is used, but
tests/metrics/test_rwdecode_native.py fails unless HERON_NO_NATIVE=1, so CI never measures the
fallback by accident. `pip install -e .` builds it in place (next to its source; .gitignored);
rebuild after editing the C source.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "src/heron/metrics/_rwdecode.c"
# The build remembers its source: heron.metrics.remote_write does not load a build of another
# version of it (a pull without a re-install), and the test named above then fails.
DIGEST = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()[:16]

setup(ext_modules=[Extension("heron.metrics._rwdecode", [SOURCE], define_macros=[("SOURCE_DIGEST", f'"{DIGEST}"')],
                             extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
                             optional=True)])
