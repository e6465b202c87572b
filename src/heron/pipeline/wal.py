"""Write-ahead log: the durability point of every ingest write.

A record is one client write: a few Arrow tables keyed by storage table name. On disk:

    header  <IIIQ  magic, payload length, crc32(seq + payload), seq
    payload        u16 table count, then per table: u16 name length, name, u32 length, Arrow IPC

Segments are files named by their first sequence number. A segment is never appended to after a
restart (a torn tail stays where it is and a new segment starts). Reading resynchronises on the
magic after a bad record, so one torn or corrupt record is reported and skipped and the rest are
kept. Segments whose records are all flushed are deleted.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

log = logging.getLogger("heron.wal")

MAGIC = 0x4857414C  # "HWAL"
HEADER = struct.Struct("<IIIQ")
MAX_RECORD = 1 << 30
SEGMENT_BYTES = 64 << 20


@dataclass
class Record:
    seq: int
    tables: dict[str, pa.Table]

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


def encode_payload(tables: dict[str, pa.Table]) -> bytes:
    parts = [struct.pack("<H", len(tables))]
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        buf = sink.getvalue()
        raw = name.encode()
        parts += [struct.pack("<H", len(raw)), raw, struct.pack("<I", buf.size), buf.to_pybytes()]
    return b"".join(parts)


def decode_payload(payload: bytes) -> dict[str, pa.Table]:
    view = memoryview(payload)
    (count,) = struct.unpack_from("<H", view, 0)
    pos, tables = 2, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<H", view, pos)
        name = bytes(view[pos + 2:pos + 2 + n]).decode()
        pos += 2 + n
        (size,) = struct.unpack_from("<I", view, pos)
        pos += 4
        tables[name] = pa.ipc.open_stream(pa.py_buffer(view[pos:pos + size])).read_all()
        pos += size
    return tables


def frame(seq: int, payload: bytes) -> bytes:
    crc = zlib.crc32(struct.pack("<Q", seq) + payload)
    return HEADER.pack(MAGIC, len(payload), crc, seq) + payload


class WAL:
    """Append-only segment files in `directory`; one writer thread uses `append`."""

    def __init__(self, directory: str | Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._seg_size = 0
        self._path: Path | None = None  # the segment being appended to
        self._others: int | None = None  # bytes of the other segments (None: stat them again)
        self.corrupt_records = 0

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.wal"))

    def size_bytes(self) -> int:
        """Bytes on disk. The gauges ask after every group commit: the other segments are
        listed and stat'ed again only after a rotation or a drop, not per append."""
        if self._fd is None or self._path is None:
            return sum(p.stat().st_size for p in self.segments())
        if self._others is None:
            self._others = sum(p.stat().st_size for p in self.segments() if p != self._path)
        return self._others + self._seg_size

    def append(self, framed: list[bytes], first_seq: int) -> None:
        """Write framed records and fsync once (group commit)."""
        if self._fd is None or self._seg_size >= self.segment_bytes:
            self._rotate(first_seq)
        assert self._fd is not None
        data = b"".join(framed)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self._seg_size += len(data)

    def _rotate(self, first_seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.dir / f"{first_seq:020d}.wal"
        if path.exists():
            # Its first intact record would carry first_seq, which is not yet written: it holds only
            # a torn write from a crash. Keep it aside for forensics; never append after it.
            path.rename(path.with_suffix(".torn"))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._path, self._others = path, None
        self._seg_size = os.fstat(self._fd).st_size
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def read(self, after_seq: int) -> Iterator[Record]:
        """Yield intact records with seq > after_seq, in order; corrupt ones are logged and skipped."""
        for path in self.segments():
            yield from self._read_segment(path, after_seq)

    def _read_segment(self, path: Path, after_seq: int) -> Iterator[Record]:
        data = path.read_bytes()
        pos, end = 0, len(data)
        while pos + HEADER.size <= end:
            magic, length, crc, seq = HEADER.unpack_from(data, pos)
            ok = magic == MAGIC and length <= MAX_RECORD and pos + HEADER.size + length <= end
            if ok:
                payload = data[pos + HEADER.size:pos + HEADER.size + length]
                ok = zlib.crc32(struct.pack("<Q", seq) + payload) == crc
            if not ok:
                self.corrupt_records += 1
                nxt = data.find(struct.pack("<I", MAGIC), pos + 1)
                log.error("WAL %s: corrupt or torn record at byte %d (%s); skipped",
                          path.name, pos, "resyncing" if nxt >= 0 else "rest of segment unreadable")
                if nxt < 0:
                    return
                pos = nxt
                continue
            pos += HEADER.size + length
            if seq <= after_seq:
                continue
            try:
                tables = decode_payload(payload)
            except Exception as exc:  # checksum held but content is not Arrow: a bug, not a crash
                self.corrupt_records += 1
                log.error("WAL %s: record %d does not decode (%s); skipped", path.name, seq, exc)
                continue
            yield Record(seq, tables)
        if pos < end:
            self.corrupt_records += 1
            log.error("WAL %s: torn record at byte %d (%d trailing bytes); skipped",
                      path.name, pos, end - pos)

    def drop_through(self, seq: int) -> None:
        """Delete segments every record of which has seq <= `seq`."""
        segs = self.segments()
        for path, nxt in itertools.pairwise(segs):
            if int(nxt.stem) - 1 <= seq:
                path.unlink(missing_ok=True)
                self._others = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._path = None
