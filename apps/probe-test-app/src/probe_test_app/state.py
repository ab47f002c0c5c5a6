"""Probe state and request counters shared by every worker process, kept in anonymous memory.

Nothing is written to disk. The block is an anonymous ``MAP_SHARED`` mapping created before the
workers are forked, so all workers see the same bytes.

Every worker owns one *slot* (a row of unsigned 64-bit integers) and only ever writes to its own
slot; readers add the slots up. That makes every update a single-writer store, so no lock is
needed and nothing can be torn or lost:

* a toggle adds 1 to the worker's toggle counter for that probe; a probe is healthy when the
  total number of toggles across all workers is even. Two concurrent toggles therefore always
  cancel out, exactly like two toggles one after the other.
* request counters are per worker too, and /metrics reports their sums.

Inside one worker the asyncio handlers never await between reading and writing, so there are no
races between requests of the same process either.
"""

from __future__ import annotations

import mmap

PROBES: tuple[str, ...] = ("livez", "readyz")
# Paths that get their own label on the request counter; anything else is counted as "other"
# so that scanners cannot create unbounded label values.
PATHS: tuple[str, ...] = ("/", "/livez", "/readyz", "/metrics", "other")
CODES: tuple[int, ...] = (200, 303, 400, 404, 405, 413, 415, 500)

_PATH_INDEX = {path: i for i, path in enumerate(PATHS)}
_CODE_INDEX = {code: i for i, code in enumerate(CODES)}
_N_COUNTERS = len(PATHS) * len(CODES)
SLOT_WORDS = len(PROBES) + _N_COUNTERS
_WORD = 8


class SharedState:
    """Probe toggles and request counters for ``workers`` processes in one anonymous mapping."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        size = max(workers * SLOT_WORDS * _WORD, mmap.PAGESIZE)
        # fileno -1: anonymous memory; MAP_SHARED so forked children share (not copy) it.
        self._mmap = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
        self._words = memoryview(self._mmap).cast("Q")
        self._slot = 0

    def use_slot(self, slot: int) -> None:
        """Make this process write to ``slot`` (call once in each worker after fork)."""
        if not 0 <= slot < self.workers:
            raise ValueError(f"slot must be in 0..{self.workers - 1}")
        self._slot = slot

    # -- probes -----------------------------------------------------------------------------
    def _toggles(self, probe_index: int) -> int:
        words = self._words
        return sum(words[s * SLOT_WORDS + probe_index] for s in range(self.workers))

    def healthy(self, probe: str) -> bool:
        return self._toggles(PROBES.index(probe)) % 2 == 0

    def is_live(self) -> bool:
        if self.workers == 1:
            return not self._words[0] & 1
        return self._toggles(0) % 2 == 0

    def is_ready(self) -> bool:
        if self.workers == 1:
            return not self._words[1] & 1
        return self._toggles(1) % 2 == 0

    def toggle(self, probe: str) -> bool:
        """Flip ``probe``; returns whether it is healthy afterwards (as seen by this worker)."""
        index = PROBES.index(probe)
        self._words[self._slot * SLOT_WORDS + index] += 1
        return self._toggles(index) % 2 == 0

    def toggle_count(self, probe: str) -> int:
        return self._toggles(PROBES.index(probe))

    # -- request counters -------------------------------------------------------------------
    def count_request(self, path: str, code: int) -> None:
        path_index = _PATH_INDEX.get(path, len(PATHS) - 1)
        code_index = _CODE_INDEX.get(code)
        if code_index is None:
            return
        offset = self._slot * SLOT_WORDS + len(PROBES) + path_index * len(CODES) + code_index
        self._words[offset] += 1

    def request_counts(self) -> dict[tuple[str, int], int]:
        """Totals over all workers, keyed by (path label, status code)."""
        words = self._words
        counts: dict[tuple[str, int], int] = {}
        for p, path in enumerate(PATHS):
            for c, code in enumerate(CODES):
                offset = len(PROBES) + p * len(CODES) + c
                counts[(path, code)] = sum(
                    words[s * SLOT_WORDS + offset] for s in range(self.workers)
                )
        return counts
