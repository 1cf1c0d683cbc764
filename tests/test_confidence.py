"""The confidence module: one set of features and thresholds shared by engine and calibration."""

import json

from index import calibrate
from index.confidence import DEFAULT_MODEL, ConfidenceModel, Features, load_model


def test_calibration_fits_the_features_the_engine_measures():
    assert calibrate.FEATURES == Features.names()
    assert Features(top_dense=0.5).vector()[0] == 0.5


def test_bands_follow_the_thresholds_and_latin_queries_have_their_own():
    model = ConfidenceModel(0.0, {}, answer_threshold=0.8, candidate_threshold=0.3, latin_answer_threshold=0.5)
    assert model.band(0.85) == "answer"
    assert model.band(0.6) == "candidates"
    assert model.band(0.6, latin=True) == "answer"
    assert model.band(0.1) == "fallback"
    assert Features(japanese_share=0.0).latin and not Features(japanese_share=0.4).latin


def test_settings_override_only_the_thresholds_they_give():
    model = DEFAULT_MODEL.with_thresholds(answer=0.9)
    assert (model.answer_threshold, model.candidate_threshold) == (0.9, DEFAULT_MODEL.candidate_threshold)


def test_more_evidence_never_lowers_the_probability():
    model = ConfidenceModel(-5.0, {"top_dense": 6.0}, 0.5, 0.2, 0.5)
    assert model.probability(Features(top_dense=0.9)) > model.probability(Features(top_dense=0.5))
    assert model.probability(None) == 0.0


def test_the_shipped_model_says_where_its_thresholds_were_tuned(tmp_path):
    model = load_model()
    assert model is not DEFAULT_MODEL
    assert all("heldout" not in name and name != "dev.jsonl" for name in model.tuned_on)
    legacy = tmp_path / "m.json"
    legacy.write_text(json.dumps({"bias": 0, "weights": {"x": 1}, "answer_threshold": 0.7, "candidate_threshold": 0.2, "tuned_on": "a.jsonl"}))
    old = load_model(legacy)
    assert old.tuned_on == ["a.jsonl"] and old.latin_answer_threshold == 0.7 and old.weights == {}


def test_tuning_counts_a_wrong_in_scope_answer_as_wrong():
    # (confidence, out of scope, top answer right): the 0.7 item is answered wrongly below 0.71.
    rows = [(0.95, False, True), (0.7, False, False), (0.5, False, True)]
    threshold = calibrate.tune_answer_threshold(rows, [], wrong_cost=3.0)
    assert 0.7 < threshold <= 0.95


def test_tuning_refuses_thresholds_that_answer_too_many_calibration_negatives():
    assert calibrate.tune_answer_threshold([(0.99, False, True)], [0.99] * 10) is None
