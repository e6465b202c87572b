"""CI must measure the C extensions, not their fallbacks: each must be built from the source next
to it (setup.py compiles its digest in) and be the one loaded, unless HERON_NO_NATIVE=1 says the
fallbacks are wanted; a stale build is refused by the loader."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from heron.metrics import id_map, native
from heron.metrics import remote_write as rw

LOADED: dict[str, Callable[[], Any]] = {"_rwdecode": lambda: rw._native, "_idmap": lambda: id_map._C}
ABI = {"_rwdecode": rw.NATIVE_ABI, "_idmap": 1}


@pytest.mark.parametrize("module", sorted(native.SOURCES))
def test_extension_is_built_and_used(module: str) -> None:
    if native.disabled():
        assert LOADED[module]() is None
        return
    mod = LOADED[module]()
    assert mod is not None, f"heron.metrics.{module} missing or stale: run `pip install -e .`"
    assert ABI[module] == mod.ABI_VERSION
    here = Path(mod.__file__).parent
    sha = hashlib.sha256()  # the source, then its headers in name order (as setup.py does)
    for path in [here / native.SOURCES[module], *sorted(here.glob(f"{module}_*.h"))]:
        sha.update(path.read_bytes())
    assert sha.hexdigest()[:16] == mod.SOURCE_DIGEST == native.source_digest(module)


@pytest.mark.skipif(native.disabled(), reason="HERON_NO_NATIVE=1")
def test_a_stale_or_other_abi_build_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("heron.metrics._idmap")
    assert native.load("_idmap", 1) is mod
    assert native.load("_idmap", 2) is None  # the Python side expects another ABI
    monkeypatch.setattr(native, "source_digest", lambda module: "0" * 16)  # the source changed
    assert native.load("_idmap", 1) is None
    monkeypatch.setenv("HERON_NO_NATIVE", "1")
    assert native.load("_rwdecode", rw.NATIVE_ABI) is None
