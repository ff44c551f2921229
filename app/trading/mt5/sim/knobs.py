"""Test knobs: ways to make the simulator misbehave on purpose (latency, dropped connections,
errors, a skewed clock, broken JSON) so the client's failure handling can be exercised. They are
set through `POST /sim/control`, which is not part of MT5."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


class KnobError(ValueError):
    pass


@dataclass
class Knobs:
    latency_ms: int = 0
    drop_rate: float = 0.0  # 0..1: close the connection instead of answering
    drop_next: int = 0  # the next N MT5 commands run, then their connection is closed unanswered
    error_rate: float = 0.0  # 0..1: answer "2 Common error" without running the command
    fail_next: list[dict[str, Any]] = field(default_factory=list)  # {"command","retcode","count"}
    clock_offset_seconds: int = 0  # server time = UTC + offset
    paused: bool = False  # the market engine stands still
    trade_rate: float = 0.0  # deals per second the simulated traders produce
    malformed_next: int = 0  # the next N MT5 answers are broken JSON

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Validate everything first, so a bad request changes nothing."""
        staged: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("latency_ms", "drop_next", "malformed_next", "clock_offset_seconds"):
                staged[key] = _int(key, value, minimum=None if key == "clock_offset_seconds" else 0)
            elif key in ("drop_rate", "error_rate"):
                number = _float(key, value)
                if not 0.0 <= number <= 1.0:
                    raise KnobError(f"{key} must be between 0 and 1")
                staged[key] = number
            elif key == "trade_rate":
                number = _float(key, value)
                if number < 0 or number > 10_000:
                    raise KnobError("trade_rate must be between 0 and 10000")
                staged[key] = number
            elif key == "paused":
                if not isinstance(value, bool):
                    raise KnobError("paused must be true or false")
                staged[key] = value
            elif key == "fail_next":
                staged[key] = self.fail_next + [_failure(item) for item in _as_list(value)]
            else:
                raise KnobError(f"unknown knob {key!r}")
        for key, value in staged.items():
            setattr(self, key, value)

    def take_failure(self, command: str) -> int | None:
        """The retcode to answer instead of running `command`, when a queued failure matches."""
        for item in self.fail_next:
            if item["command"] in ("*", command):
                item["count"] -= 1
                if item["count"] <= 0:
                    self.fail_next.remove(item)
                return int(item["retcode"])
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _failure(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or "retcode" not in item:
        raise KnobError('fail_next takes {"command": "trade/balance", "retcode": 10019, "count": 1}')
    command = str(item.get("command") or "*").strip("/").removeprefix("api/")
    return {
        "command": command,
        "retcode": _int("retcode", item["retcode"], minimum=1),
        "count": _int("count", item.get("count", 1), minimum=1),
    }


def _int(key: str, value: Any, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise KnobError(f"{key} must be an integer")
    try:
        number = int(value)
    except ValueError as exc:
        raise KnobError(f"{key} must be an integer") from exc
    if minimum is not None and number < minimum:
        raise KnobError(f"{key} must be at least {minimum}")
    return number


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise KnobError(f"{key} must be a number")
    try:
        number = float(value)
    except ValueError as exc:
        raise KnobError(f"{key} must be a number") from exc
    if not math.isfinite(number):
        raise KnobError(f"{key} must be finite")
    return number
