"""Replay data, answer scripts and fault specs of the provider simulator (no sockets)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest

from dispatcher.simulator.dialect import LENGTH, STOP, STOP_SEQUENCE
from dispatcher.simulator.faults import FaultPicker, FaultSpecError, parse_odds
from dispatcher.simulator.replay import ReplayStore, list_text, pieces
from dispatcher.simulator.script import build_script
from engine.signals.tokens import count_text_tokens
from modelroute.config import load_config


def _first_row(path: Path) -> dict[str, str]:
    csv.field_size_limit(1 << 30)
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.DictReader(f))


def test_list_text_unwraps_python_list_strings() -> None:
    assert list_text("['D\\n']") == "D\n"
    assert list_text('["it\'s"]') == "it's"
    assert list_text("plain text") == "plain text"
    assert list_text("[not a list") == "[not a list"


def test_known_routerbench_prompt_gets_that_models_recorded_answer(
    store: ReplayStore, shared_data: Path
) -> None:
    row = _first_row(shared_data / "routerbench" / "mbpp_train.csv")
    prompt = ast.literal_eval(row["prompt"])[0]
    for model in ("claude-v2", "gpt-4-1106-preview", "meta/llama-2-70b-chat"):
        expected = ast.literal_eval(row[f"{model}|model_response"])[0]
        assert store.answer(model, prompt) == expected
        # whitespace differences in the request do not break the match
        assert store.answer(model, "  " + prompt.replace(" ", "  ") + "\n") == expected


def test_pair_model_replays_its_gsm8k_answers(store: ReplayStore, shared_data: Path) -> None:
    row = _first_row(shared_data / "routellm_pair" / "gsm8k_responses.csv")
    model = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert store.answer(model, row["prompt"]) == row[f"{model}_response"]


def test_unknown_prompt_is_deterministic_and_varies_by_prompt(store: ReplayStore) -> None:
    model = "gpt-3.5-turbo-1106"
    first = store.answer(model, "a prompt nobody recorded")
    assert first
    assert store.answer(model, "a prompt nobody recorded") == first
    answers = {store.answer(model, f"unrecorded prompt number {i}") for i in range(40)}
    assert len(answers) > 5


def test_every_configured_model_has_its_own_or_closest_data(store: ReplayStore) -> None:
    cfg = load_config()
    for name in cfg.models:
        assert store.source_model(name) == name, name
    assert store.source_model("claude-v2.1") == "claude-v2"
    assert store.source_model("GPT-4-1106-PREVIEW") == "gpt-4-1106-preview"


def test_pieces_spread_the_whole_text_count() -> None:
    text = "Hello world, this is 12345 a test.\nAnother line."
    parts, cumulative = pieces(text)
    assert "".join(parts) == text
    assert cumulative[-1] == count_text_tokens(text)
    assert list(cumulative) == sorted(cumulative)


def test_script_chunks_rebuild_the_answer() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    script = build_script(text, chunk_tokens=3)
    assert "".join(c for c, _ in script.chunks) == text
    assert 1 < len(script.chunks) < len(text.split())
    assert all(t >= 3 for _, t in script.chunks[:-1])
    assert script.answer.finish == STOP
    assert script.answer.output_tokens == count_text_tokens(text)
    assert sum(t for _, t in script.chunks) == script.answer.output_tokens


def test_script_max_tokens_truncates_with_length() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    script = build_script(text, max_tokens=5)
    assert text.startswith(script.answer.text)
    assert 0 < len(script.answer.text) < len(text)
    assert 0 < script.answer.output_tokens <= 5
    assert script.answer.finish == LENGTH
    roomy = build_script(text, max_tokens=10_000)
    assert roomy.answer.text == text
    assert roomy.answer.finish == STOP


def test_script_stop_sequence_and_prefill() -> None:
    script = build_script("alpha beta STOP gamma", stop=["STOP", "beta"])
    assert script.answer.text == "alpha "
    assert script.answer.finish == STOP_SEQUENCE
    assert script.answer.stop_sequence == "beta"
    cont = build_script("The answer is 42 because", prefix="The answer is")
    assert cont.answer.text == " 42 because"


def test_parse_odds_validates() -> None:
    assert parse_odds(["overloaded=0.05", "cut=0.1"]) == {"overloaded": 0.05, "cut": 0.1}
    for bad in (["nope=0.1"], ["cut"], ["cut=x"], ["cut=2"], ["cut=0.6", "stall=0.6"]):
        with pytest.raises(FaultSpecError):
            parse_odds(bad)


def test_fault_count_only_first_k_requests_with_the_key() -> None:
    picker = FaultPicker()
    headers = {"x-sim-fault": "overloaded", "x-sim-fault-count": "2", "x-sim-fault-key": "k1"}
    got = [picker.pick(headers) for _ in range(4)]
    assert [f.name if f else None for f in got] == ["overloaded", "overloaded", None, None]
    other = picker.pick({**headers, "x-sim-fault-key": "k2"})
    assert other is not None and other.name == "overloaded"


def test_random_faults_follow_odds_with_a_seed() -> None:
    always = FaultPicker({"overloaded": 1.0}, seed=1)
    assert all(always.pick({}) is not None for _ in range(20))
    never = FaultPicker({}, seed=1)
    assert all(never.pick({}) is None for _ in range(20))
    half = FaultPicker({"cut": 0.5}, seed=7)
    hits = sum(half.pick({}) is not None for _ in range(400))
    assert 140 < hits < 260
    with pytest.raises(FaultSpecError):
        always.pick({"x-sim-fault": "explode"})
