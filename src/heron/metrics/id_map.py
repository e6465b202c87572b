"""Series id -> int64 value, held in numpy arrays: the ingest path's membership tables.

A write of 2000 series looked every id up in 3-4 Python dicts and sets (limiter, series index,
head index): ~0.3-0.5 ms per structure per request at 100k series (a cache miss per id, one
Python int per id), and a new series cost one insert in each, plus a Python int object each
that the garbage collector walks through every set on a full collection. Here a lookup or an
insert of a whole write is a few numpy passes (open addressing with linear probing, at most
half full); the table holds no Python objects at all, so the collector never sees it.

The probing loops run in C when the extension is built (`_idmap.c`: one pass over a batch instead
of a few numpy operations per probe step; 60% of the write path's CPU for new series went here);
the numpy code below is the fallback (HERON_NO_NATIVE=1, no compiler) and the tests' reference.
Both use the same layout and hash.

Ids are blake2b-64 hashes of label sets; the slot is a multiplicative hash of the id with a
random odd multiplier chosen per table, so label sets crafted to share low id bits do not
build long probe chains. Id 0 (the empty-slot marker) is kept aside in `_zero`.
"""

from __future__ import annotations

import secrets

import numpy as np

from heron.metrics import native

_C = native.load("_idmap", 1)
MISSING = -1  # what `get` returns for an absent id (values may be any other int64)
_MIN_BITS = 10
_W = 8  # slots compared per id and step: one or two cache lines, and chains rarely pass 8
_PAD = 64  # chains do not wrap around: they may run this far past the last hash slot
_STEP = np.arange(_W, dtype=np.int64)
_ZERO = -(1 << 62)  # `find`'s place of id 0 (kept aside, not in the table)
_FEW = 64  # open chains below this: windows (fewer steps) instead of one slot per step


class IdMap:
    """uint64 id -> int64 value (not thread-safe: callers hold their own lock)."""

    __slots__ = ("_bits", "_keys", "_mult", "_n", "_vals", "_zero")

    def __init__(self, capacity: int = 0) -> None:
        self._mult = np.uint64(secrets.randbits(64) | 1)
        self._n = 0
        self._zero: int | None = None  # the value of id 0, if present
        self._alloc(self._bits_for(capacity))

    @staticmethod
    def _bits_for(n: int) -> int:
        return max(_MIN_BITS, int(2 * max(n, 1) - 1).bit_length())  # at most half full

    def _alloc(self, bits: int) -> None:
        self._bits = bits
        self._keys = np.zeros((1 << bits) + _PAD, np.uint64)
        self._vals = np.zeros((1 << bits) + _PAD, np.int64)

    def __len__(self) -> int:
        return self._n + (self._zero is not None)

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._vals.nbytes

    def _slot(self, ids: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((ids * self._mult) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _find(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each (nonzero) id: where it is, or -1 - the empty slot that ends its chain
        (-1 - len(keys): the chain runs past the padding; only an insert meets that, and grows).
        One slot per id and step while many chains are open (most end at their home slot);
        the few long ones then compare a window of `_W` slots per step."""
        if _C is not None:
            out = np.empty(len(ids), np.int64)
            _C.find(self._keys, int(self._mult), self._bits, np.ascontiguousarray(ids, np.uint64), out)
            return out
        keys = self._keys
        at = self._slot(ids)
        k = keys[at]
        hit = k == ids
        out = np.where(hit, at, -1 - at)
        act = np.flatnonzero(~hit & (k != 0))
        while len(act) > _FEW:
            b = at[act] + 1
            at[act] = b
            k = keys[b]
            a_ids = ids[act]
            hit = k == a_ids
            out[act] = np.where(hit, b, -1 - b)
            act = act[~hit & (k != 0)]
        if len(act):
            self._scan(ids, act, at[act] + 1, out)
        return out

    def _scan(self, ids: np.ndarray, act: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """`_find` for ids[act], their chains walked on from slots `b`, a window per step."""
        keys = self._keys
        limit = len(keys) - _W
        while len(act):
            over = b > limit
            if over.any():
                out[act[over]] = -1 - len(keys)
                act, b = act[~over], b[~over]
            win = keys[b[:, None] + _STEP]
            a_ids = ids[act]
            stop = (win == a_ids[:, None]) | (win == 0)
            first = stop.argmax(axis=1)
            at = b + first
            has = stop[np.arange(len(act)), first]
            out[act[has]] = np.where(keys[at[has]] == a_ids[has], at[has], -1 - at[has])
            act, b = act[~has], b[~has] + _W

    def find(self, ids: np.ndarray) -> np.ndarray:
        """Where each id is (>= 0) or is not (< 0), for `values` and `put` while the table is
        unchanged: a lookup followed by an insert of what it missed walks the chains once."""
        ids = np.asarray(ids, np.uint64)
        zero = ids == 0
        if not len(ids) or not zero.any():
            return self._find(ids)
        out = np.full(len(ids), _ZERO, np.int64)
        nz = np.flatnonzero(~zero)
        out[nz] = self._find(ids[nz])
        return out

    def values(self, where: np.ndarray) -> np.ndarray:
        """The value at each place `find` returned (MISSING: absent)."""
        out = np.full(len(where), MISSING, np.int64)
        ok = where >= 0
        out[ok] = self._vals[where[ok]]
        if self._zero is not None:
            out[where == _ZERO] = self._zero
        return out

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The value of each id (MISSING when absent)."""
        return self.values(self.find(ids))

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.find(ids) >= 0 if self._zero is None else self.get(ids) != MISSING

    def set(self, ids: np.ndarray, values: np.ndarray | int) -> int:
        """ids[i] -> values[i], inserting absent ids; returns how many were inserted. An id
        given twice keeps one of its values (callers give repeats the same value)."""
        ids = np.asarray(ids, np.uint64)
        return self.put(ids, values, self.find(ids))

    def put(self, ids: np.ndarray, values: np.ndarray | int, where: np.ndarray) -> int:
        """`set`, given `where = find(ids)` from an unchanged table."""
        ids = np.asarray(ids, np.uint64)
        vals = np.broadcast_to(np.asarray(values, np.int64), ids.shape)
        if not len(ids):
            return 0
        added = 0
        zero = where == _ZERO
        if zero.any():
            added = int(self._zero is None)
            self._zero = int(vals[np.flatnonzero(zero)[-1]])
            keep = ~zero
            ids, vals, where = ids[keep], vals[keep], where[keep]
        hit = where >= 0
        if hit.all():
            self._vals[where] = vals
            return added
        if _C is not None:
            return added + self._put_c(ids, vals, int(np.count_nonzero(~hit)))
        self._vals[where[hit]] = vals[hit]
        new = np.flatnonzero(~hit)
        ids, vals, at = ids[new], vals[new], -1 - where[new]
        before = self._n
        if 2 * (self._n + len(ids)) > len(self._keys) - _PAD:
            self._grow(self._n + len(ids))
            at = -1 - self._find(ids)
        elif (at >= len(self._keys)).any() or (self._keys[np.minimum(at, len(self._keys) - 1)] != 0).any():
            at = -1 - self._find(ids)  # `where` does not fit this table (a caller's mistake): look again
        while not self._insert(ids, vals, at):  # a chain ran past the padding (rare): more room
            self._grow(2 * self._n)
            found = self._find(ids)
            absent = found < 0
            ids, vals, at = ids[absent], vals[absent], -1 - found[absent]
        return added + self._n - before

    def _put_c(self, ids: np.ndarray, vals: np.ndarray, new: int) -> int:
        """`put` in C (ids nonzero, `new` of them absent by `where`): in write order, so an id
        given twice keeps its last value; returns how many were inserted."""
        assert _C is not None
        ids = np.ascontiguousarray(ids, np.uint64)
        vals = np.ascontiguousarray(vals, np.int64)
        if 2 * (self._n + new) > len(self._keys) - _PAD:
            self._grow(self._n + new)
        total = 0
        while True:
            inserted, done = _C.insert(self._keys, self._vals, int(self._mult), self._bits, ids, vals)
            self._n += inserted
            total += inserted
            if done == len(ids):
                return total
            self._grow(2 * self._n)  # a chain ran past the padding (rare): more room, then the rest
            ids, vals = ids[done:], vals[done:]

    def _insert(self, ids: np.ndarray, vals: np.ndarray, at: np.ndarray) -> bool:
        """Place absent ids in `at`, the empty slots that end their chains. Ids that race for one
        slot: exactly one wins it (its index is written to the slot's value and read back); a
        loser stops there if the winner is the same id (a repeat), else walks on from that
        slot to the next empty one. False when a chain ran past the padding (what was placed
        stays)."""
        keys, store = self._keys, self._vals
        act = np.arange(len(ids))
        at = at.copy()
        while len(act):
            p = at[act]
            if (p >= len(keys)).any():
                return False
            store[p] = act
            won = store[p] == act
            w_at, w = p[won], act[won]
            keys[w_at] = ids[w]
            store[w_at] = vals[w]
            self._n += len(w)
            if won.all():
                break
            lost = ~won
            act, p = act[lost], p[lost]
            again = keys[p] != ids[act]  # not a repeat of the winner
            act, p = act[again], p[again]
            if len(act):
                found = np.empty(len(ids), np.int64)
                self._scan(ids, act, p + 1, found)
                at[act] = -1 - found[act]  # every chain ends empty: these ids are absent
        return True

    def _grow(self, need: int) -> None:
        keys, vals = (self._keys, self._vals) if _C is not None else self._items_nonzero()  # C skips empty slots
        self._build(max(self._bits + 1, self._bits_for(need)), keys, vals)

    def _build(self, bits: int, keys: np.ndarray, vals: np.ndarray) -> None:
        """A fresh table of 2^bits slots holding these distinct nonzero ids (C: zeros are skipped,
        so a table's own arrays rehash in one pass). numpy, without probing: sorted by home slot,
        each id goes to max(its home, the previous id's slot + 1), which is exactly where
        inserting them one by one in that order would put them."""
        if _C is not None:
            keys = np.ascontiguousarray(keys, np.uint64)
            vals = np.ascontiguousarray(vals, np.int64)
            while True:
                self._alloc(bits)
                inserted, done = _C.insert(self._keys, self._vals, int(self._mult), bits, keys, vals)
                if done == len(keys):
                    self._n = inserted
                    return
                bits += 1  # a run past the padding (rare): more room
        while True:
            self._alloc(bits)
            home = self._slot(keys)
            order = np.argsort(home, kind="stable")
            ramp = np.arange(len(keys), dtype=np.int64)
            at = np.maximum.accumulate(home[order] - ramp) + ramp if len(keys) else ramp
            if not len(at) or at[-1] < len(self._keys):
                break
            bits += 1  # a run past the padding (rare): more room
        self._keys[at] = keys[order]
        self._vals[at] = vals[order]
        self._n = len(keys)

    def _items_nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        occ = self._keys != 0
        return self._keys[occ], self._vals[occ]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (id, value), in no particular order."""
        keys, vals = self._items_nonzero()
        if self._zero is not None:
            keys = np.append(keys, np.uint64(0))
            vals = np.append(vals, np.int64(self._zero))
        return keys, vals

    def retain(self, keep_ids: np.ndarray, keep_vals: np.ndarray) -> None:
        """Replace the contents with these distinct (id, value) pairs (deletions: a rebuild)."""
        ids = np.asarray(keep_ids, np.uint64)
        vals = np.asarray(keep_vals, np.int64)
        zero = ids == 0
        self._zero = int(vals[zero][-1]) if zero.any() else None
        self._build(self._bits_for(len(ids)), ids[~zero], vals[~zero])

    def clear(self) -> None:
        self._alloc(_MIN_BITS)
        self._n, self._zero = 0, None
