"""Do no harm: the search's best trial replaces the starting point only when it beats it by
more than the noise the search measured (pure Python).

When a trial beats the starting point by enough that it could matter, and the budget
allows, the starting point is trained once more with another seed: a low-fidelity trial's
score moves with its initialisation and data order by more than the validation split's
sampling error, and the two seeds' spread measures that. The noise is the larger of that
spread and the binomial standard error of the validation accuracy. With one seed only, the
win must be clear: more than CLEAR_WIN standard errors.

A second seed cannot change the decision when the best leads the start by at most half a
standard error (SE): with the second score lower by d, the margin grows by d/2 while the
noise becomes max(SE, d), so margin - noise is at most lead - SE/2; a higher second score
only lowers the margin. Such a seed is not trained (the quickstart spent a sixth of its
search on one, for a lead of 0.3 points against a standard error of 1.7).
"""
from __future__ import annotations

import dataclasses
import math

CLEAR_WIN = 3.0


def standard_error(accuracy: float, examples: int) -> float:
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(examples, 1))


def is_start(values: dict, start: dict) -> bool:
    """Whether a trial's hyperparameter `values` are the starting point's (KerasTuner's own
    "tuner/..." bookkeeping aside)."""
    return all(start.get(k) == v for k, v in values.items() if not k.startswith("tuner/"))


def needs_second_seed(best: float, start: float, validation_examples: int) -> bool:
    """Whether a second seed of the start could change the decision (module docstring)."""
    return best - start > standard_error(start, validation_examples) / 2


@dataclasses.dataclass(frozen=True)
class Decision:
    keep_start: bool
    start_scores: tuple[float, ...]
    best_score: float
    margin: float          # best - mean of the start's scores
    noise: float           # what the margin had to exceed

    def to_dict(self) -> dict:
        return {"kept": "start" if self.keep_start else "best",
                "start_scores": [round(s, 4) for s in self.start_scores],
                "best_score": round(self.best_score, 4), "margin": round(self.margin, 4),
                "noise": round(self.noise, 4)}

    def describe(self) -> str:
        verb = "keeps the starting point" if self.keep_start else "takes the best trial"
        return (f"do no harm: {verb} (best {self.best_score:.4f}, start "
                f"{'/'.join(f'{s:.4f}' for s in self.start_scores)}, margin "
                f"{self.margin:+.4f} against noise {self.noise:.4f})")


def decide(best: float, start_scores: tuple[float, ...], validation_examples: int) -> Decision:
    start = sum(start_scores) / len(start_scores)
    error = standard_error(start, validation_examples)
    if len(start_scores) > 1:
        noise = max(error, max(start_scores) - min(start_scores))
    else:
        noise = CLEAR_WIN * error
    margin = best - start
    return Decision(margin <= noise, tuple(start_scores), best, margin, noise)
