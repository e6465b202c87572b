"""Series id -> int64 value, held in numpy arrays: the ingest path's membership tables.

A write of 2000 series looked every id up in 3-4 Python dicts and sets (limiter, series index,
head index): ~0.3-0.5 ms per structure per request at 100k series (a cache miss per id, one
Python int per id), and a new series cost one insert in each, plus a Python int object each
that the garbage collector walks through every set on a full collection. Here a lookup or an
insert of a whole write is a few numpy passes (open addressing with linear probing, at most
half full); the table holds no Python objects at all, so the collector never sees it.

Ids are blake2b-64 hashes of label sets; the slot is a multiplicative hash of the id with a
random odd multiplier chosen per table, so label sets crafted to share low id bits do not
build long probe chains. Id 0 (the empty-slot marker) is kept aside in `_zero`.
"""

from __future__ import annotations

import secrets

import numpy as np

MISSING = -1  # what `get` returns for an absent id (values may be any other int64)
_MIN_BITS = 10
_W = 8  # slots compared per id and step: one or two cache lines, and chains rarely pass 8
_PAD = 64  # chains do not wrap around: they may run this far past the last hash slot
_STEP = np.arange(_W, dtype=np.int64)
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
        if not len(act):
            return out
        limit = len(keys) - _W
        b = at[act] + 1
        while len(act):
            over = b > limit
            if over.any():
                out[act[over]] = -1 - len(keys)
                act, b = act[~over], b[~over]
            win = keys[b[:, None] + _STEP]
            a_ids = ids[act]
            stop = (win == a_ids[:, None]) | (win == 0)
            first = stop.argmax(axis=1)
            at_ = b + first
            has = stop[np.arange(len(act)), first]
            out[act[has]] = np.where(keys[at_[has]] == a_ids[has], at_[has], -1 - at_[has])
            act, b = act[~has], b[~has] + _W
        return out

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The value of each id (MISSING when absent)."""
        ids = np.asarray(ids, np.uint64)
        out = np.full(len(ids), MISSING, np.int64)
        if not len(ids):
            return out
        nz = ids != 0
        if nz.all():
            found = self._find(ids)
            ok = found >= 0
            out[ok] = self._vals[found[ok]]
            return out
        if self._zero is not None:
            out[~nz] = self._zero
        sel = np.flatnonzero(nz)
        found = self._find(ids[sel])
        ok = found >= 0
        out[sel[ok]] = self._vals[found[ok]]
        return out

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.get(ids) != MISSING

    def set(self, ids: np.ndarray, values: np.ndarray | int) -> None:
        """ids[i] -> values[i], inserting absent ids. An id given twice keeps one of its values
        (callers give repeats the same value)."""
        ids = np.asarray(ids, np.uint64)
        vals = np.broadcast_to(np.asarray(values, np.int64), ids.shape)
        if not len(ids):
            return
        zero = ids == 0
        if zero.any():
            self._zero = int(vals[np.flatnonzero(zero)[-1]])
            ids, vals = ids[~zero], vals[~zero]
        if 2 * (self._n + len(ids)) > len(self._keys) - _PAD:
            self._grow(self._n + len(ids))
        while not self._set(ids, vals):  # a chain ran past the padding (rare): more room
            self._grow(2 * self._n)

    def _set(self, ids: np.ndarray, vals: np.ndarray) -> bool:
        found = self._find(ids)
        hit = found >= 0
        if hit.all():
            self._vals[found] = vals
            return True
        self._vals[found[hit]] = vals[hit]
        new = np.flatnonzero(~hit)
        return self._insert(ids[new], vals[new], -1 - found[new])

    def _insert(self, ids: np.ndarray, vals: np.ndarray, at: np.ndarray) -> bool:
        """Place absent ids in `at`, the empty slots that end their chains. Ids that race for one
        slot: exactly one wins it (its index is written to the slot's value and read back); the
        others walk their chains again, and stop if the winner was the same id (a repeat).
        False when a chain ran past the padding (what was placed stays)."""
        keys, store = self._keys, self._vals
        act = np.arange(len(ids))
        while len(act):
            if (at >= len(keys)).any():
                return False
            store[at] = act
            won = store[at] == act
            w_at, w = at[won], act[won]
            keys[w_at] = ids[w]
            store[w_at] = vals[w]
            self._n += len(w)
            if won.all():
                break
            act = act[~won]
            found = self._find(ids[act])
            again = found < 0  # still absent: not a repeat of an id just placed
            act, at = act[again], -1 - found[again]
        return True

    def _grow(self, need: int) -> None:
        keys, vals = self._items_nonzero()
        self._build(max(self._bits + 1, self._bits_for(need)), keys, vals)

    def _build(self, bits: int, keys: np.ndarray, vals: np.ndarray) -> None:
        """A fresh table of 2^bits slots holding these distinct nonzero ids, without probing:
        sorted by home slot, each id goes to max(its home, the previous id's slot + 1), which is
        exactly where inserting them one by one in that order would put them."""
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
