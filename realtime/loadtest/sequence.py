"""A socket's place in its user's event sequence: what to resume after, what came already."""

from __future__ import annotations


class SeqTracker:
    """The seqs one socket has received, across its reconnections.

    `through` is the highest seq up to which every event has come: a reconnection resumes
    after it, so nothing is skipped even when live frames overtook the replay before the link
    dropped again. While a resume runs, the server replays every event after `through`, also
    those the socket got live since its `hello`: those repeats are the contract's, and are
    not passed on. Outside a resume, every frame is passed on, so a repeat counts.
    """

    def __init__(self) -> None:
        self.through = 0
        self._above: set[int] = set()  # seqs received beyond a gap
        self._connected = False
        self.resuming = False

    def hello(self, seq: int) -> int | None:
        """A (re)connection said hello at `seq`: the seq to resume after, or None."""
        if not self._connected:
            self._connected = True
            self.through = seq  # what came before the first hello is not of this run
            return None
        if seq > self.through:
            self.resuming = True
            return self.through
        return None

    def receive(self, seq: int) -> bool:
        """A frame with `seq` came: whether to count it."""
        seen = seq <= self.through or seq in self._above
        if seen:
            return not self.resuming
        if seq == self.through + 1:
            self.through = seq
            while self.through + 1 in self._above:
                self.through += 1
                self._above.remove(self.through)
        else:
            self._above.add(seq)
        return True

    def resumed(self, seq: int) -> None:
        """The server sent everything through `seq` (`resumed`), or gave up (`resync`)."""
        self.resuming = False
        self.through = max(self.through, seq)
        self._above = {above for above in self._above if above > self.through}
