"""The in-memory Raft log of one core: a compacted prefix followed by live entries.

Entries are kept in one list addressed by offset (``index - snapshot_index - 1``), so appends
are O(1) and slices cost only what they return. Besides the commit index the log tracks how
far its entries have been handed to the driver for persisting (``emitted``) and how far the
driver has confirmed them durable (``stable``).
"""

from __future__ import annotations

from bisect import bisect_right

from raft3d.consensus.types import Entry


def _entry_term(entry: Entry) -> int:
    return entry.term


class RaftLog:
    __slots__ = ("_emitted", "_entries", "_snap_index", "_snap_term", "_stable", "committed")

    def __init__(self, snap_index: int, snap_term: int, entries: list[Entry]) -> None:
        for k, entry in enumerate(entries):
            if entry.index != snap_index + 1 + k:
                raise ValueError("log entries must be contiguous and follow the snapshot")
        self._snap_index = snap_index
        self._snap_term = snap_term
        self._entries = entries
        self.committed = snap_index
        last = snap_index + len(entries)
        self._stable = last  # everything handed to us at start-up came from durable storage
        self._emitted = last

    # --- positions -------------------------------------------------------------------------

    @property
    def snapshot_index(self) -> int:
        return self._snap_index

    @property
    def snapshot_term(self) -> int:
        return self._snap_term

    @property
    def first_index(self) -> int:
        return self._snap_index + 1

    @property
    def last_index(self) -> int:
        return self._snap_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self._snap_term

    @property
    def stable_index(self) -> int:
        """Last index known to be durable in the driver's storage."""
        return self._stable

    def term_at(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if it is compacted away or not there yet."""
        offset = index - self._snap_index
        if offset == 0:
            return self._snap_term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (last_index, last_term) is at least as current as ours."""
        my_term = self.last_term
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index)

    # --- reading ---------------------------------------------------------------------------

    def entries_between(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries lo..hi (inclusive) up to ``max_bytes`` of payload, but at least one."""
        start = lo - self._snap_index - 1
        stop = hi - self._snap_index
        if start < 0 or stop > len(self._entries):
            raise IndexError(f"entries {lo}..{hi} are not in the log")
        entries = self._entries
        end = start
        size = 0
        while end < stop:
            size += entries[end].size()
            if size > max_bytes and end > start:
                break
            end += 1
        return entries[start:end]

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The last entry at or before ``index`` whose term is <= ``term``, as (index, term).

        Terms never decrease along a log, so this is a binary search. Used both for the
        follower's reject hint and by the leader to skip a whole term while backtracking.
        If the answer lies in the compacted prefix the term is reported as 0 (unknown).
        """
        index = min(index, self.last_index)
        if index < self._snap_index:
            return index, 0
        pos = bisect_right(self._entries, term, 0, index - self._snap_index, key=_entry_term)
        if pos > 0:
            return self._snap_index + pos, self._entries[pos - 1].term
        if self._snap_term <= term:
            return self._snap_index, self._snap_term
        return self._snap_index, 0

    def unstable_entries(self) -> list[Entry]:
        """Entries not yet handed to the driver for persisting."""
        return self._entries[self._emitted - self._snap_index :]

    def has_unstable(self) -> bool:
        return self._emitted < self._snap_index + len(self._entries)

    # --- writing ---------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Leader append of a new entry at last_index + 1."""
        self._entries.append(entry)

    def append_after(self, prev_index: int, entries: list[Entry]) -> int | None:
        """Follower append of ``entries`` that follow ``prev_index`` (whose term the caller
        has already matched).

        Only a suffix that conflicts with the new entries (same index, different term) is
        removed; entries that match stay, so a stale or duplicated message can never shorten
        the log. Returns the index of the last new entry, or None if the message would
        overwrite a committed entry (only a faulty peer can send that).
        """
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                return None
            self.truncate_from(conflict)
            self._entries.extend(entries[conflict - prev_index - 1 :])
        return last_new

    def find_conflict(self, entries: list[Entry]) -> int:
        """Index of the first entry that is missing or differs in term from ours, or 0."""
        for entry in entries:
            if self.term_at(entry.index) != entry.term:
                return entry.index
        return 0

    def truncate_from(self, index: int) -> None:
        """Drop every entry at or after ``index``."""
        del self._entries[index - self._snap_index - 1 :]
        self._emitted = min(self._emitted, index - 1)
        self._stable = min(self._stable, index - 1)

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            self.committed = index
            return True
        return False

    def restore(self, index: int, term: int) -> None:
        """Replace the whole log by a snapshot that ends at (index, term)."""
        self._entries = []
        self._snap_index = index
        self._snap_term = term
        self.committed = index
        self._emitted = index
        self._stable = index

    def compact(self, index: int) -> int:
        """Drop entries up to and including ``index`` (already applied and durable)."""
        term = self.term_at(index)
        if term is None:
            raise ValueError(f"cannot compact at {index}: not in the log")
        del self._entries[: index - self._snap_index]
        self._snap_index = index
        self._snap_term = term
        return term

    def mark_emitted(self, index: int) -> None:
        self._emitted = index

    def stable_to(self, index: int, term: int) -> None:
        """The driver made entries up to (index, term) durable."""
        if self.term_at(index) == term and index > self._stable:
            self._stable = min(index, self._emitted)
