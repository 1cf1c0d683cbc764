"""Confidence: how likely the top hit answers the query, and which band that puts the reply in.

One home for the three things that must agree: the evidence features the
engine measures (`Features`), the logistic model fitted on them by
`index/calibrate.py` (`ConfidenceModel`, stored in `calibration/model.json`),
and the thresholds that turn a probability into a band. Calibration reads the
same `Features` fields it fits, so a feature renamed here is renamed
everywhere; settings may override a threshold, but there is no other default.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

Band = Literal["answer", "candidates", "fallback"]
MODEL_FILE = Path(__file__).resolve().parent / "calibration" / "model.json"


@dataclass(frozen=True)
class Features:
    """Evidence that the top hit answers the query (all computed by `SearchEngine.search`)."""

    top_dense: float = 0.0  # cosine of the query with the top hit's best vector
    dense_margin: float = 0.0  # that cosine minus the runner-up's
    top_lexical_norm: float = 0.0  # the top hit's BM25, squashed to 0..1
    coverage: float = 0.0  # IDF-weighted share of the query's Japanese words in the top hit
    latin_coverage: float = 0.0  # the same with Latin words counted
    japanese_share: float = 0.0  # share of the query's words written in Japanese (describes the query)
    agree: float = 0.0  # 1 when dense and lexical rank the same FAQ first
    fused_margin: float = 0.0  # fused score of the top hit minus the runner-up's

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def vector(self) -> list[float]:
        return [getattr(self, name) for name in self.names()]

    @property
    def latin(self) -> bool:
        """A query written in Latin letters only (English): its confidence runs on another scale."""
        return self.japanese_share == 0.0

    def get(self, name: str, default: float | None = None) -> float | None:
        """Dict-style access, for callers that read one feature by name."""
        return getattr(self, name, default)

    def __getitem__(self, name: str) -> float:
        return getattr(self, name)


# Describe the query, not evidence for the answer: the fit leaves their sign free.
CONTEXT_FEATURES = frozenset({"japanese_share"})


@dataclass(frozen=True)
class ConfidenceModel:
    """The fitted model and its thresholds; `probability` and `band` are all the engine needs."""

    bias: float
    weights: dict[str, float]
    answer_threshold: float
    candidate_threshold: float
    # Queries in Latin letters have only meaning to go on, not shared words.
    latin_answer_threshold: float
    tuned_on: list[str] = field(default_factory=list)  # where the thresholds were chosen, never a reported set

    def probability(self, features: Features | None) -> float:
        if features is None:
            return 0.0
        z = self.bias + sum(weight * getattr(features, name, 0.0) for name, weight in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def band(self, probability: float, latin: bool = False) -> Band:
        answer = self.latin_answer_threshold if latin else self.answer_threshold
        if probability >= answer:
            return "answer"
        return "candidates" if probability >= self.candidate_threshold else "fallback"

    def with_thresholds(
        self, answer: float | None = None, candidate: float | None = None, latin_answer: float | None = None
    ) -> "ConfidenceModel":
        """The same model with the thresholds that are given replaced (settings overrides)."""
        return replace(
            self,
            answer_threshold=self.answer_threshold if answer is None else answer,
            candidate_threshold=self.candidate_threshold if candidate is None else candidate,
            latin_answer_threshold=self.latin_answer_threshold if latin_answer is None else latin_answer,
        )

    @classmethod
    def from_dict(cls, data: dict) -> "ConfidenceModel":
        tuned = data.get("tuned_on") or []
        return cls(
            bias=float(data["bias"]),
            weights={k: float(v) for k, v in data["weights"].items() if k in Features.names()},
            answer_threshold=float(data["answer_threshold"]),
            candidate_threshold=float(data["candidate_threshold"]),
            latin_answer_threshold=float(data.get("latin_answer_threshold", data["answer_threshold"])),
            tuned_on=[tuned] if isinstance(tuned, str) else list(tuned),
        )

    def to_dict(self) -> dict:
        return asdict(self)


# Used until `govfaq calibrate` has written model.json: a hand-set guess.
DEFAULT_MODEL = ConfidenceModel(
    bias=-40.0,
    weights={"top_dense": 45.0, "dense_margin": 20.0, "top_lexical_norm": 3.0, "agree": 1.0},
    answer_threshold=0.6,
    candidate_threshold=0.35,
    latin_answer_threshold=0.6,
)


def load_model(path: Path = MODEL_FILE) -> ConfidenceModel:
    """The calibrated model, or the hand-set default when none was written (or it is unreadable)."""
    try:
        return ConfidenceModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return DEFAULT_MODEL
