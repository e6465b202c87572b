"""Statements with query parameters from several threads, beside plain ones: each must see its own
values. (chDB keeps query parameters in the shared session: run at once, two statements got each
other's values, silently, and a plain statement beside one cleared them: "Substitution `x` is not
set". That broke the UI's trace search under load.)"""

from __future__ import annotations

import threading

from heron.storage.chdb import ChDBStorage


def test_parameters_do_not_leak_between_threads(storage: ChDBStorage) -> None:
    wrong: list[tuple[int, int]] = []
    errors: list[str] = []

    def with_params(k: int) -> None:
        for i in range(150):
            want = k * 1000 + i
            try:
                got = storage.execute("SELECT {start:Int64} AS x, {name:String} AS n",
                                      {"start": want, "name": f"t{k}"}).to_pylist()[0]
                if got != {"x": want, "n": f"t{k}"}:
                    wrong.append((want, got["x"]))
            except Exception as exc:
                errors.append(str(exc)[:200])

    def plain() -> None:
        for _ in range(150):
            try:
                storage.execute("SELECT count() FROM system.one")
            except Exception as exc:
                errors.append(str(exc)[:200])

    threads = [threading.Thread(target=with_params, args=(k,)) for k in (1, 2, 3)] + [threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and wrong == []
