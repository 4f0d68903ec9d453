"""Throttling of the backfill's retrieves: a daily time window and a maximum rate.

The third limit, the number of studies in flight, is counted in the job store
(:meth:`srservice.jobs.JobStore.backfill_in_flight`) so that it holds across a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TimeWindow:
    """A daily window of local time, ``HH:MM-HH:MM``; it wraps midnight when end < start.

    Start == end means the whole day.
    """

    start_minute: int
    end_minute: int

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        """Parse ``HH:MM-HH:MM`` (validated by :class:`srservice.config.Settings`)."""
        start, end = text.strip().split("-")
        return cls(_minute(start), _minute(end))

    def is_open(self, now: datetime) -> bool:
        """Return True when ``now`` (local time) is inside the window."""
        minute = now.hour * 60 + now.minute
        if self.start_minute == self.end_minute:
            return True
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def next_open(self, now: datetime) -> datetime:
        """Return when the window opens next (``now`` when it is open)."""
        if self.is_open(now):
            return now
        start = now.replace(hour=self.start_minute // 60, minute=self.start_minute % 60,
                            second=0, microsecond=0)
        return start if start > now else start + timedelta(days=1)

    def __str__(self) -> str:
        return f"{self.start_minute // 60:02d}:{self.start_minute % 60:02d}-" \
               f"{self.end_minute // 60:02d}:{self.end_minute % 60:02d}"


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class RateLimit:
    """At most ``per_minute`` retrieve starts a minute: starts at least 60/per_minute s apart.

    Parameters
    ----------
    per_minute : float
        Maximum rate.
    last_start : float or None
        ``time.time()`` of the previous start (from the job store on resume).
    """

    def __init__(self, per_minute: float, last_start: float | None = None) -> None:
        self.interval = 60.0 / per_minute
        self.last_start = last_start

    def wait_seconds(self, now: float | None = None) -> float:
        """Seconds until the next start is allowed (0 = now)."""
        if self.last_start is None:
            return 0.0
        now = time.time() if now is None else now
        return max(0.0, self.last_start + self.interval - now)

    def started(self, now: float | None = None) -> None:
        """Record a start."""
        self.last_start = time.time() if now is None else now
