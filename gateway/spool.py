"""Store and forward: while the database is away, the writer's batches go to files on disk, one file a
batch, named by sequence number, and are replayed in order when it returns. A replayed batch that was
in fact already stored writes nothing twice (the writer's exactly-once write). The spool is bounded;
what happens when it is full is the configured policy, counted and logged, never silent."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from telemetry.model import Count, Rejected, Sample

log = logging.getLogger(__name__)
Item = Sample | Count | Rejected
KINDS: dict[str, type[Sample] | type[Count] | type[Rejected]] = {"s": Sample, "c": Count, "r": Rejected}
KIND_OF = {cls: kind for kind, cls in KINDS.items()}
Policy = Literal["drop_oldest", "drop_newest"]


@dataclass
class SpoolStats:
    spooled: int = 0  # samples written to disk
    replayed: int = 0  # samples replayed to the database
    dropped: int = 0  # samples discarded because the spool was full
    replay_failures: int = 0


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        policy: Policy = "drop_oldest",
        retry_max_wait: float = 30.0,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.policy = policy
        self.retry_max_wait = retry_max_wait
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):  # a write cut short by a crash: never acknowledged
            stale.unlink()
        self._files: list[tuple[Path, int, int]] = []  # (path, samples, bytes), oldest first
        for path in sorted(directory.glob("*.batch")):
            self._files.append((path, _count_of(path), path.stat().st_size))
        self._next = int(self._files[-1][0].stem.split("-")[0]) + 1 if self._files else 0
        self._arrived = asyncio.Event()
        self.stats = SpoolStats()
        if self._files:
            log.warning("spool %s holds %d batches from before: replaying them", directory, len(self._files))

    @property
    def backlog(self) -> bool:
        return bool(self._files)

    @property
    def depth(self) -> int:
        """Samples waiting on disk."""
        return sum(n for _, n, _ in self._files)

    @property
    def size(self) -> int:
        return sum(b for _, _, b in self._files)

    async def put(self, batch: list[Item]) -> None:
        data = _encode(batch)
        if not self._make_room(len(data), len(batch)):
            return
        path = self.directory / f"{self._next:016d}-{len(batch)}.batch"
        self._next += 1
        await asyncio.to_thread(_write_durably, path, data)
        self._files.append((path, len(batch), len(data)))
        self.stats.spooled += len(batch)
        self._arrived.set()

    def _make_room(self, needed: int, samples: int) -> bool:
        if self.size + needed <= self.max_bytes:
            return True
        if self.policy == "drop_newest" or needed > self.max_bytes:
            self._drop(samples, "newest batch")
            return False
        while self._files and self.size + needed > self.max_bytes:
            path, n, _ = self._files.pop(0)
            path.unlink(missing_ok=True)
            self._drop(n, f"oldest batch {path.name}")
        return True

    def _drop(self, samples: int, what: str) -> None:
        self.stats.dropped += samples
        log.error(
            "spool %s full (%d bytes max, policy %s): dropped the %s, %d samples (%d dropped in all)",
            self.directory,
            self.max_bytes,
            self.policy,
            what,
            samples,
            self.stats.dropped,
        )

    async def drain(self, write: Callable[[list[Item]], Awaitable[Any]]) -> None:
        """Replay the oldest batch until the spool is empty; back off (capped, jittered) while the
        database is still away."""
        failures = 0
        while True:
            if not self._files:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            path, n, _ = self._files[0]
            try:
                await write(await asyncio.to_thread(_read, path))
            except Exception as exc:
                failures += 1
                self.stats.replay_failures += 1
                if failures == 1:
                    log.warning("spool replay waiting for the database: %s", exc)
                await asyncio.sleep(random.uniform(0, min(self.retry_max_wait, 0.2 * 2**failures)))
                continue
            if failures:
                log.info("database back: replaying %d spooled samples", self.depth)
            failures = 0
            if self._files and self._files[0][0] == path:
                self._files.pop(0)
            path.unlink(missing_ok=True)
            self.stats.replayed += n


def _encode(batch: list[Item]) -> bytes:
    rows = [
        [
            KIND_OF[type(item)],
            item[0].isoformat() if item[0] is not None else None,
            *item[1:],
        ]
        for item in batch
    ]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()


def _read(path: Path) -> list[Item]:
    out: list[Item] = []
    for kind, time, *rest in json.loads(path.read_bytes()):
        when = datetime.fromisoformat(time) if time is not None else None
        out.append(KINDS[kind](when, *rest))  # type: ignore[arg-type]
    return out


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)


def _count_of(path: Path) -> int:
    try:
        return int(path.stem.split("-")[1])
    except (IndexError, ValueError):
        return 0
