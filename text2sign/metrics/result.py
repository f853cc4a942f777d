"""``Metric``: a measured number, or N/A with the reason it could not be measured."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric value: ``value`` is the measurement, or None with a ``reason`` (N/A).

    Evaluation reports never substitute a number under a metric's name: when a metric cannot be
    measured (no weights, too few videos, ...) it is N/A and the reason says why.
    """

    value: float | None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise ValueError("an N/A metric needs a reason")
        if self.value is not None and math.isnan(self.value):
            # NaN is not a measurement: report N/A with a reason instead.
            raise ValueError("a metric value cannot be NaN; use Metric.na(reason)")

    @classmethod
    def of(cls, value: float) -> Metric:
        """A measured value (``inf`` allowed, e.g. the PSNR of identical videos; NaN is not)."""
        return cls(float(value))

    @classmethod
    def na(cls, reason: str) -> Metric:
        """Not measured, with the reason why."""
        return cls(None, reason)

    @property
    def is_na(self) -> bool:
        """True when the metric could not be measured."""
        return self.value is None

    def to_json(self) -> dict[str, float | str | None]:
        """``{"value": v or None, "reason": r}``; ``r`` is "" for a measured value."""
        return {"value": self.value, "reason": self.reason}
