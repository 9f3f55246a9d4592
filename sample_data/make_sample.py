"""Generate the bundled sample data, deterministically (seeded): ``python sample_data/make_sample.py``.

A synthetic health-checkup table: one row per visit, with mixed types and the usual mess —
integers, floats on very different scales, a categorical column, a date column, missing values
written both as ``NA`` and as empty cells — plus two targets: ``risk`` (low/medium/high, a
categorical target) and ``hba1c`` (a numeric target). ``checkups.csv`` is for fitting and training,
``checkups_new.csv`` is "new data" from the same generator for transform and predict.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

REGIONS = ("north", "south", "east", "west")
HERE = Path(__file__).parent


def make_rows(n: int, seed: int, first_id: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    height = rng.normal(170, 9, n)
    bmi = rng.normal(26, 4.5, n).clip(16, 48)
    weight = bmi * (height / 100) ** 2
    region = rng.choice(REGIONS, n, p=[0.3, 0.3, 0.25, 0.15])
    steps = rng.gamma(2.0, 3500.0, n).round()
    income = rng.lognormal(10.6, 0.6, n).round(2)  # thousands of units apart from the rest
    systolic = (100 + 0.45 * age + 1.1 * (bmi - 26) + rng.normal(0, 11, n)).round()
    cholesterol = (4.2 + 0.018 * age + 0.04 * (bmi - 26) + rng.normal(0, 0.8, n)).round(2)
    glucose = (4.6 + 0.015 * age + 0.09 * (bmi - 26) - 0.00004 * steps + rng.normal(0, 0.6, n)).round(2)
    hba1c = (3.1 + 0.42 * glucose + 0.006 * age + rng.normal(0, 0.25, n)).round(2)
    score = (
        0.05 * (age - 50) + 0.035 * (systolic - 125) + 0.9 * (glucose - 5.4) + 0.12 * (bmi - 26)
        - 0.00012 * (steps - 7000) + rng.logistic(0, 0.6, n)
    )
    risk = np.where(score > 1.6, "high", np.where(score > -0.2, "medium", "low"))
    start = dt.date(2023, 1, 1)
    days = rng.integers(0, 730, n)
    rows = []
    for i in range(n):
        rows.append(
            {
                "patient_id": f"P{first_id + i:05d}",
                "visit_date": (start + dt.timedelta(days=int(days[i]))).isoformat(),
                "region": region[i],
                "age": int(age[i]),
                "height_cm": round(float(height[i]), 1),
                "weight_kg": round(float(weight[i]), 1),
                "systolic_bp": int(systolic[i]),
                "cholesterol": float(cholesterol[i]),
                "glucose": float(glucose[i]),
                "daily_steps": int(steps[i]),
                "income": float(income[i]),
                "hba1c": float(hba1c[i]),
                "risk": risk[i],
            }
        )
    # missing values: "NA" in cholesterol and income, empty cells in glucose and daily_steps
    for column, token, rate in (
        ("cholesterol", "NA", 0.04),
        ("income", "NA", 0.06),
        ("glucose", "", 0.03),
        ("daily_steps", "", 0.05),
    ):
        for i in np.flatnonzero(rng.random(n) < rate):
            rows[i][column] = token
    return rows


def write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    write(HERE / "checkups.csv", make_rows(4000, seed=20261125, first_id=1))
    write(HERE / "checkups_new.csv", make_rows(1000, seed=20261126, first_id=4001))
