"""Do no harm: the search's best trial replaces the starting point only when it beats it by
more than the noise the search measured (pure Python).

The noise is the larger of the validation accuracy's binomial standard error and the spread
between two seeds of the starting point, when a second seed was trained: a trial that wins
by less than that may have won by luck of initialisation and of the validation draw.
A clear win (more than CLEAR_WIN standard errors) needs no second seed.
"""
from __future__ import annotations

import dataclasses
import math

CLEAR_WIN = 3.0


def standard_error(accuracy: float, examples: int) -> float:
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(examples, 1))


def needs_second_seed(best: float, start: float, validation_examples: int) -> bool:
    """Whether the decision hangs on the noise: the best trial beats the start, not clearly."""
    return 0 < best - start <= CLEAR_WIN * standard_error(start, validation_examples)


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
    noise = max(standard_error(start, validation_examples),
                max(start_scores) - min(start_scores))
    margin = best - start
    return Decision(margin <= noise, tuple(start_scores), best, margin, noise)
