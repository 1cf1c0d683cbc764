"""Fit the confidence model on questions the index has never seen.

A confidence is only useful if it means something: 0.8 should be right about
eight times in ten. We make held-out questions the honest way:

- positives: for a random share of FAQs, one paraphrase is removed from the
  index (both its words and its vector) and asked as a query; kept when the
  top hit is that FAQ (a miss is mostly a sibling FAQ of the same programme);
- negatives: questions residents ask that the documents do not answer
  (`calibration/out_of_scope.txt`, written for this project).

A logistic regression over the engine's evidence features is fitted on
these and written to `calibration/model.json`, with the thresholds that
minimise the cost of a wrong answer (counted `wrong_cost` times a fallback).
The development set is not used here.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np

from .confidence import CONTEXT_FEATURES, MODEL_FILE, Features
from .engine import SearchEngine

CALIBRATION_FILE = MODEL_FILE
OUT_OF_SCOPE_FILE = Path(__file__).resolve().parent / "calibration" / "out_of_scope.txt"
FEATURES = Features.names()  # the same typed features the engine measures (index/confidence.py)


def read_out_of_scope(path: Path = OUT_OF_SCOPE_FILE) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def held_out_kb(kb, share: float, seed: int):
    """A copy of `kb` with one paraphrase removed from a share of FAQs; returns (kb, [(query, faq_id)])."""
    from faq.loader import KnowledgeBase

    rng = random.Random(seed)
    faqs, probes = [], []
    for faq in kb.faqs:
        if len(faq.alt_questions) >= 3 and rng.random() < share:
            held = rng.choice(faq.alt_questions)
            faqs.append(faq.model_copy(update={"alt_questions": [a for a in faq.alt_questions if a != held]}))
            probes.append((held, faq.id))
        else:
            faqs.append(faq)
    copy = KnowledgeBase(faqs, kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)
    return copy, probes


def collect(engine: SearchEngine, cache_dir: Path | None, share: float = 0.5, seeds=(1, 2)) -> tuple[np.ndarray, np.ndarray, list]:
    rows, labels, notes = [], [], []
    for seed in seeds:
        kb, probes = held_out_kb(engine.kb, share, seed)
        probe_engine = SearchEngine(kb, engine.embedder, engine.tokenizer, engine.config).build(cache_dir=cache_dir)
        # An English question shares some words with the FAQ's English paraphrase but is
        # not that paraphrase: for English probes the vector is held out, the words are not.
        latin_probe = copy.copy(probe_engine)
        latin_probe.lexical = engine.lexical
        for query, faq_id in probes:
            latin = engine.lexical.japanese_share(query) == 0.0
            result = (latin_probe if latin else probe_engine).search(query, k=5)
            if not result.hits:
                continue
            if result.hits[0].faq_id != faq_id:
                # A miss here is mostly a sibling FAQ of the same programme, often holding
                # the same facts: as a negative it teaches the model that good evidence is
                # bad. Ranking quality is measured elsewhere; this model separates
                # "the knowledge base answers this" from "it does not".
                continue
            rows.append(result.features.vector())
            labels.append(1)
            notes.append(("paraphrase", query, faq_id, result.hits[0].faq_id))
    for query in read_out_of_scope():
        result = engine.search(query, k=5)
        if not result.hits:
            continue
        rows.append(result.features.vector())
        labels.append(0)
        notes.append(("out_of_scope", query, None, result.hits[0].faq_id))
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.float64), notes


def fit_logistic(
    x: np.ndarray, y: np.ndarray, nonneg: np.ndarray | None = None, l2: float = 1.0, steps: int = 3000, lr: float = 0.1
) -> tuple[float, np.ndarray]:
    """Batch gradient descent on standardised features; returns weights for raw features.

    `nonneg` marks evidence features whose weight may not be negative: more
    evidence must never lower the confidence. The held-out probes are harder
    than real questions in a systematic way (their own paraphrase is missing
    from the index), and an unconstrained fit learns such artefacts.
    """
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    # Balance the classes so the rarer one is not ignored.
    w_pos = 0.5 / max(y.mean(), 1e-9)
    w_neg = 0.5 / max(1 - y.mean(), 1e-9)
    sample_w = np.where(y == 1, w_pos, w_neg)
    w, b = np.zeros(z.shape[1]), 0.0
    n = len(y)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - y) * sample_w
        w -= lr * ((z.T @ g) / n + l2 * w / n)
        if nonneg is not None:
            w[nonneg] = np.maximum(w[nonneg], 0.0)
        b -= lr * g.mean()
    raw_w = w / std
    raw_b = b - float((w * mean / std).sum())
    return raw_b, raw_w


def choose_thresholds(p: np.ndarray, y: np.ndarray, wrong_cost: float = 3.0) -> tuple[float, float]:
    """Answer threshold minimising wrong_cost·(wrong answers) + (right answers withheld)."""
    best = (float("inf"), 0.5)
    for t in np.linspace(0.05, 0.95, 91):
        answered = p >= t
        cost = wrong_cost * np.sum(answered & (y == 0)) + np.sum(~answered & (y == 1))
        if cost < best[0]:
            best = (cost, float(t))
    answer_t = best[1]
    # Below the answer band, show candidates while they still hold the answer often.
    candidate_t = max(0.05, round(answer_t / 3, 2))
    return round(answer_t, 2), candidate_t


def calibrate(engine: SearchEngine, cache_dir: Path | None, out: Path = CALIBRATION_FILE, wrong_cost: float = 3.0) -> dict:
    x, y, notes = collect(engine, cache_dir)
    bias, weights = fit_logistic(x, y, nonneg=np.array([f not in CONTEXT_FEATURES for f in FEATURES]))
    p = 1 / (1 + np.exp(-(x @ weights + bias)))
    answer_t, candidate_t = choose_thresholds(p, y, wrong_cost)
    answered = p >= answer_t
    report = {
        "bias": bias,
        "weights": dict(zip(FEATURES, map(float, weights))),
        "answer_threshold": answer_t,
        "candidate_threshold": candidate_t,
        "samples": {"positives": int(y.sum()), "negatives": int(len(y) - y.sum())},
        "tuned_on": [],  # thresholds from the held-out paraphrases and out_of_scope.txt only
        "at_threshold": {
            "precision": round(float((y[answered] == 1).mean()), 4) if answered.any() else None,
            "answered_share_of_positives": round(float(answered[y == 1].mean()), 4),
            "out_of_scope_answered": int(sum(1 for a, n in zip(answered, notes) if a and n[0] == "out_of_scope")),
            "out_of_scope_total": int(sum(1 for n in notes if n[0] == "out_of_scope")),
        },
    }
    report["_out_of_scope_confidences"] = [float(v) for v, n in zip(p, notes) if n[0] == "out_of_scope"]
    share = FEATURES.index("japanese_share")
    report["_out_of_scope_latin"] = [bool(row[share] == 0.0) for row, n in zip(x, notes) if n[0] == "out_of_scope"]
    write_model(report, out)
    return report


def write_model(report: dict, out: Path = CALIBRATION_FILE) -> None:
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    out.write_text(json.dumps(public, ensure_ascii=False, indent=1) + "\n")


def tune_answer_threshold(
    dev: list[tuple[float, bool, bool]], oos_confidences: list[float], max_oos_share: float = 0.05, wrong_cost: float = 3.0
) -> float | None:
    """The answer threshold with the least cost on a tuning set: `wrong_cost` for every item
    answered wrongly (an out-of-scope item answered, or an in-scope item whose top FAQ lacks
    the expected facts) and 1 for every right answer withheld; at most `max_oos_share` of the
    calibration out-of-scope questions may be answered. Of the equally good thresholds, the
    middle one: it keeps the widest margin on both sides. None when no threshold qualifies.

    `dev` holds (confidence, is_out_of_scope, top answer right) per tuning item.
    """
    grid = np.round(np.arange(0.30, 0.99, 0.01), 2)
    negatives = np.array(oos_confidences)
    scored = []
    for t in grid:
        if len(negatives) and np.mean(negatives >= t) > max_oos_share:
            continue
        wrong = sum(conf >= t and (oos or not right) for conf, oos, right in dev)
        withheld = sum(conf < t and right for conf, oos, right in dev if not oos)
        scored.append((wrong_cost * wrong + withheld, float(t)))
    if not scored:
        return None
    best = min(cost for cost, _ in scored)
    candidates = [t for cost, t in scored if cost == best]
    return candidates[len(candidates) // 2]
