"""wandb's record numbers (`Record.num`: 1, 2, 3, ... in each `.wandb` file) checked as records are read.

They make damage visible that checksums cannot see, and the "records skipped" count exact:

- a gap (numbers n+1 .. m-1 never seen) is that many lost records, whatever the framing scan guessed from the
  chunks it dropped in between (a dropped chunk run can hold several records, or one record several chunks);
- a number already read (a duplicated block) is skipped: applying it again would duplicate history rows;
- a number that was missing and arrives late (reordered blocks) is skipped too: its place in the history has
  passed (it was counted when its number went missing).

Files whose records carry no numbers (num 0) are read as they are. Skips of any other kind (a record that
decodes badly) go through `skip`, so they are told apart from framing losses.
"""

from __future__ import annotations

from analysis.core.run import ReadStatus

__all__ = ["RecordSequence", "skip_record"]

_MAX_MISSING_KEPT = 100_000
_MAX_UNCONFIRMED = 1_000  # numbers of missing records remembered (to recognise late arrivals)


def skip_record(status: ReadStatus, why: str) -> None:
    """Count one record that was read but could not be used: it costs itself, nothing more."""
    status.skipped_records += 1
    status.errors.append(why)


class RecordSequence:
    """Checks `Record.num` of each record in file order; see the module docstring."""

    def __init__(self, from_start: bool = True) -> None:
        self.from_start = from_start  # False: reading from the middle of a file (a live run refreshed)
        self.last: int | None = None  # number of the last record accepted
        self.numbered: bool | None = None  # None until the first record says
        self.own_skips = 0  # skips counted here or by `skip` (the rest of `skipped_records` is framing losses)
        self.framing_at_last = 0  # framing losses counted when the last numbered record was accepted
        self.missing: set[int] = set()
        # the gap opened by the previous record, until the next record confirms it:
        # (number before the gap, count added to `skipped_records`, index of its note in `errors`, framing losses
        # counted at the number before the gap)
        self.jump: tuple[int, int, int, int] | None = None
        self.slot_guess: dict[int, int] = {}  # slot -> number of the record whose number looked damaged
        self.applied_ahead: set[int] = set()  # numbers already read out of order (not missing when reached)

    def skip(self, status: ReadStatus, why: str) -> None:
        self.own_skips += 1
        skip_record(status, why)

    def accept(self, num: int, status: ReadStatus) -> bool:
        """Whether to use the record numbered `num`; the status counts what is missing, duplicated, reordered."""
        if self.numbered is None:
            self.numbered = num > 0
        if not self.numbered or num <= 0:
            return True
        last = self.last if self.last is not None else (0 if self.from_start else num - 1)
        jump, self.jump = self.jump, None
        if jump is not None and jump[0] < num <= last:
            # the record before jumped ahead but this one continues the old numbering: that record's own number
            # was damaged (its content passed its checksum and decoded). Undo the gap it opened; it took one slot.
            before, added, note, framing_before = jump
            status.skipped_records -= added
            del status.errors[note]
            self.missing.difference_update(range(before + 1, last))
            self.framing_at_last = framing_before
            self.slot_guess[before + 1] = last  # unless record before+1 turns up later (then it was reordered)
            last = before + 1
        framing = status.skipped_records - self.own_skips
        if num == last + 1:
            pass
        elif num > last + 1:
            ahead = {n for n in self.applied_ahead if last < n < num}
            self.applied_ahead -= ahead
            gap = num - last - 1 - len(ahead)
            # the framing scan's guess for this stretch is replaced by the exact count
            guessed = framing - self.framing_at_last
            status.skipped_records += gap - guessed
            first = last + 1
            self.jump = (last, gap - guessed, len(status.errors), self.framing_at_last)
            status.errors.append(
                f"record {first} missing" if gap == 1 else f"records {first}..{num - 1} missing ({gap} records)"
            )
            if gap <= _MAX_MISSING_KEPT:
                self.missing.update(n for n in range(first, num) if n not in ahead)
            if gap == 0:  # the stretch was read already, out of order
                self.jump = None
                status.errors.pop()
        else:
            late = num in self.missing
            self.missing.discard(num)
            if late:  # counted when it went missing
                status.errors.append(f"record {num} out of order (after record {last}), skipped")
            elif num in self.slot_guess:  # the record taken for this one had its genuine (later) number
                self.applied_ahead.add(self.slot_guess.pop(num))
                self.skip(status, f"record {num} out of order (after record {last}), skipped")
            else:
                self.skip(status, f"record {num} duplicated (after record {last}), skipped")
            return False
        self.last = num
        self.framing_at_last = status.skipped_records - self.own_skips
        return True

    def finish(self, status: ReadStatus) -> None:
        """At the end of the records: a jump of more than `_MAX_UNCONFIRMED` numbers made by the very last record,
        that no later record confirmed, is taken for a damaged number (the framing scan's count stands)."""
        jump, self.jump = self.jump, None
        if jump is not None and jump[1] > _MAX_UNCONFIRMED:
            before, added, note, _ = jump
            status.skipped_records -= added
            status.errors[note] = f"record after record {before} has an implausible number"
