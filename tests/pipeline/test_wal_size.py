"""The WAL's size gauge is asked after every group commit: it must stay exact while the other
segments are listed only after a rotation or a drop."""

from __future__ import annotations

from pathlib import Path

from heron.pipeline.wal import WAL, frame


def on_disk(d: Path) -> int:
    return sum(p.stat().st_size for p in d.glob("*.wal"))


def test_size_follows_appends_rotations_and_drops(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=300)
    assert wal.size_bytes() == 0
    seq = 1
    for n in (50, 120, 200, 10, 400, 30, 90):
        wal.append([frame(seq, b"x" * n)], seq)
        seq += 1
        assert wal.size_bytes() == on_disk(tmp_path)
    assert len(wal.segments()) >= 3
    wal.drop_through(seq - 2)
    assert wal.size_bytes() == on_disk(tmp_path)
    wal.append([frame(seq, b"y" * 70)], seq)
    assert wal.size_bytes() == on_disk(tmp_path)
    wal.close()
    assert wal.size_bytes() == on_disk(tmp_path)
    again = WAL(tmp_path, segment_bytes=300)  # a restart: never appends to an old segment
    again.append([frame(seq + 1, b"z" * 5)], seq + 1)
    assert again.size_bytes() == on_disk(tmp_path) and len(again.segments()) >= 2
    again.close()
