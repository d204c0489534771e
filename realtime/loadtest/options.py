"""What a load test does: the deployment, the people, the rate and the mix of messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from realtime.loadtest.stages import Stage, send_offsets, steady, total_seconds

MIN_EXPIRES_IN = 60.0
# Where the admin's password may come from instead of --admin-password, which `ps` shows.
ADMIN_LOGIN_VARIABLE = "REALTIME_LOADTEST_ADMIN_PASSWORD"


class LoadTestError(Exception):
    """The test cannot run: the server is unreachable, or refuses the admin or the setup."""


@dataclass(frozen=True)
class Options:
    urls: tuple[str, ...]
    admin_password: str = field(repr=False)
    users: int
    rate: float
    duration: float
    admin_user: str = "admin"
    group_size: int | None = None
    group_share: float | None = None  # of messages to groups; None: half when there are groups
    high_priority_share: float = 0.0
    ramp: float = 100.0  # websockets opened per second
    user_prefix: str = "loadtest"
    drain: float = 10.0  # seconds to wait for late events once the last send is answered
    concurrency: int = 64  # sends in flight at most
    seed: int | None = None
    expires_in: float | None = None  # seconds each message lives; None: no expiry
    json_path: Path | None = None
    stages: tuple[Stage, ...] | None = None  # instead of --rate and --duration

    def __post_init__(self) -> None:
        problems = []
        if not self.urls:
            problems.append("give at least one URL")
        if self.users < 2:
            problems.append("--users must be at least 2: someone sends, someone receives")
        if self.rate <= 0 or self.duration <= 0:
            problems.append("--rate and --duration must be above 0")
        if self.group_size is not None and not 2 <= self.group_size <= min(self.users, 10_000):
            problems.append("--group-size must be from 2 to --users (and at most 10,000)")
        for name, share in (("--high-priority-share", self.high_priority_share),
                            ("--group-share", self.group_share)):
            if share is not None and not 0.0 <= share <= 1.0:
                problems.append(f"{name} must be from 0 to 1")
        if self.group_share and self.group_size is None:
            problems.append("--group-share needs --group-size")
        if self.expires_in is not None and self.expires_in < MIN_EXPIRES_IN:
            problems.append(f"--expires-in must be at least {MIN_EXPIRES_IN:g} seconds, so that "
                            "every message is delivered before it goes")
        if self.ramp <= 0 or self.drain < 0 or self.concurrency < 1:
            problems.append("--ramp and --concurrency must be above 0, --drain at least 0")
        if problems:
            raise LoadTestError("; ".join(problems))

    def asked(self) -> dict[str, object]:
        """The run's shape, as the report repeats it."""
        return {"urls": len(self.urls), "users": self.users, "rate": self.rate,
                "duration": self.duration, "group_size": self.group_size,
                "group_share": self.share_to_groups,
                "high_priority_share": self.high_priority_share, "ramp": self.ramp,
                "expires_in": self.expires_in,
                "stages": None if self.stages is None
                else [[stage.seconds, stage.rate] for stage in self.stages]}

    def profile(self) -> tuple[float, tuple[Stage, ...]]:
        """The rate to start at and the stages: --stages, or --rate held for --duration."""
        if self.stages is not None:
            return 0.0, self.stages
        return steady(self.rate, self.duration)

    @property
    def rate_asked(self) -> float:
        """The sends a second asked, on average over the sending."""
        start, stages = self.profile()
        planned = sum(1 for _ in send_offsets(stages, start))
        return round(planned / total_seconds(stages), 3)

    @property
    def share_to_groups(self) -> float:
        if self.group_size is None:
            return 0.0
        return 0.5 if self.group_share is None else self.group_share


def admin_password(given: str | None, environ: Mapping[str, str], server_admin: str | None) -> str:
    """--admin-password, else REALTIME_LOADTEST_ADMIN_PASSWORD, else REALTIME_ADMIN_PASSWORD."""
    password = given or environ.get(ADMIN_LOGIN_VARIABLE, "").strip() or server_admin
    if not password:
        raise LoadTestError(
            f"set {ADMIN_LOGIN_VARIABLE} (or REALTIME_ADMIN_PASSWORD), or give --admin-password"
        )
    return password
