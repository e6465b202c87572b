"""Build glue for the one C extension (everything else is declared in pyproject.toml).

`heron.metrics._rwdecode` decodes remote-write requests (see its source's header). It is optional:
without a compiler the install still succeeds and the pure-Python decoder is used, but
tests/metrics/test_rwdecode_native.py fails unless HERON_NO_NATIVE=1, so CI never measures the
fallback by accident. `pip install -e .` builds it in place (next to its source; .gitignored);
rebuild after editing the C source.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("heron.metrics._rwdecode", ["src/heron/metrics/_rwdecode.c"],
                             extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
                             optional=True)])
