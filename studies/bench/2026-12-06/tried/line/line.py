"""A variant tried at stop 52, not adopted (docs/search-efficiency.md): the rung's calibration is a
fitted line, log full = a + b log rung, not a shift
(b = 1): with its prediction interval (Student-t, the leverage of the value), a rung that hardly
ranks the keep sets (b near 0) predicts about the mean full-budget value of the keep sets seen,
so the stop rule stops only the clearly hopeless; a rung that ranks them well stops as today.

    python studies/bench/2026-12-06/tried/line/line.py bench replay ARGS...
"""

import sys
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, t

import autoprune.multifidelity as mf
from autoprune.cli import main


@dataclass
class Line:
    a: float
    b: float
    s: float  # residual standard deviation
    n: int
    x_mean: float
    sxx: float

    @property
    def sigma(self) -> float:  # the spread a stopped keep set's prediction enters the surrogate
        return float(self.s * np.sqrt(1 + 1 / self.n))

    def predict(self, value: float, sigmas: float = 0.0) -> float:
        x = np.log(value)
        spread = self.s * np.sqrt(1 + 1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        quantile = t.ppf(norm.cdf(sigmas), self.n - 2) if sigmas else 0.0
        return float(np.exp(self.a + self.b * x - quantile * spread))


def fit(cls, pairs):
    if len(pairs) < mf.MIN_PAIRS:
        return None
    x = np.log([rung for rung, _ in pairs])
    y = np.log([full for _, full in pairs])
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx <= 1e-12:
        return None
    b = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    a = float(y.mean() - b * x.mean())
    s = float(np.sqrt(((y - a - b * x) ** 2).sum() / (len(x) - 2)))
    return Line(a, b, s, len(x), float(x.mean()), sxx)


mf.Calibration.fit = classmethod(fit)
sys.exit(main(sys.argv[1:]))
