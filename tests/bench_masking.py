"""Cost of `mask_personal_data` per call: p50 and p95 over texts (each text's time is the median of 20
calls) for the ordinary questions, every FAQ question and paraphrase and the personal-data corpus,
and single 2,000-character worst cases.

    PYTHONPATH=. python tests/bench_masking.py

It measures and prints; it asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.privacy import mask_personal_data  # noqa: E402
from tests.fakes import shipped_content  # noqa: E402

DATA = ROOT / "tests" / "data"


def per_call(texts: list[str], repeat: int = 20) -> list[float]:
    times = []
    for text in texts:
        calls = []
        for _ in range(repeat):
            started = time.perf_counter()
            mask_personal_data(text)
            calls.append(time.perf_counter() - started)
        times.append(statistics.median(calls))
    return sorted(times)


def main() -> None:
    ordinary = [line for line in (DATA / "ordinary_questions.txt").read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#")]
    kb = shipped_content().kb
    questions = [q for faq in kb.faqs for q in [faq.question, *faq.alt_questions]]
    corpus = [json.loads(line)["text"] for line in (DATA / "pii_corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    for name, texts in [("ordinary questions", ordinary), ("FAQ questions and paraphrases", questions), ("personal-data corpus", corpus)]:
        times = per_call(texts)
        p50, p95 = statistics.median(times), times[int(len(times) * 0.95)]
        print(f"{name:30} n={len(texts):5}  p50 {p50 * 1e6:6.1f} µs  p95 {p95 * 1e6:6.1f} µs")
    worst = {"2,000 hiragana": "あ" * 2000, "2,000 kanji (名前 …)": "名前山田" * 500, "1-1-1-…": "1-" * 1000,
             "a@a@…": "a@" * 1000, "an FAQ answer, repeated": (kb.faqs[0].answer * 10)[:2000]}
    for name, text in worst.items():
        print(f"{name:30} {statistics.median(per_call([text], repeat=5)) * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
