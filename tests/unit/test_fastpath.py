"""The native Decide (engine.fastpath) equals the Python path, and leaves it the rest."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

import pytest

from dispatcher.simulator.replay import ReplayStore
from engine import _fastpath
from engine.eval.data import load_7b, load_pair
from engine.factory import build_engine
from engine.fastpath import fast_path
from engine.service import Engine
from engine.wire_decode import decide_input
from engine.wire_encode import DecisionEncoder
from modelroute.config import DEFAULT_CONFIG_PATH, load_config
from modelroute.domain import TaskType
from modelroute.errors import ModelrouteError
from modelroute.v1 import common_pb2, engine_pb2

USER, SYSTEM, ASSISTANT, TOOL = (
    common_pb2.ROLE_USER,
    common_pb2.ROLE_SYSTEM,
    common_pb2.ROLE_ASSISTANT,
    common_pb2.ROLE_TOOL,
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return build_engine(load_config())


def _python(engine: Engine, raw: bytes) -> engine_pb2.Decision | None:
    """The Python path's Decision of ``raw``, or None when it rejects the request."""
    try:
        req = engine_pb2.DecideRequest.FromString(raw)
        out = DecisionEncoder().encode(engine.decide(decide_input(req)))
    except ModelrouteError:
        return None
    return engine_pb2.Decision.FromString(out)


def _comparable(d: engine_pb2.Decision, random_request_id: bool) -> engine_pb2.Decision:
    d.decision_id = ""
    d.decision_time_us = 0
    if random_request_id:
        d.request_id = ""
    return d


def _req(*turns: tuple[int, str], **kw: object) -> engine_pb2.DecideRequest:
    r = engine_pb2.DecideRequest(**kw)  # type: ignore[arg-type]
    for role, text in turns:
        r.messages.add(role=role, content=text)
    return r


def _variants(text: str, i: int) -> list[engine_pb2.DecideRequest]:
    hint = common_pb2.TASK_TYPE_MATH if i % 2 else common_pb2.TASK_TYPE_SUMMARIZATION
    named = _req((USER, text), tier="standard", request_id=f"n{i}")
    named.messages[0].name = "alice"
    named.metadata["trace"] = "abc"
    named.metadata["team"] = "search"
    narrowed = _req((USER, text), tier="premium", request_id=f"o{i}")
    ov = narrowed.overrides
    ov.allowed_models.extend(["gpt-3.5-turbo-1106", "claude-instant-v1", "claude-v2"])
    if i % 2:
        ov.allowed_models.append("mistralai/mixtral-8x7b-chat")  # not in free: only narrows
    capped = _req((USER, text), tier="free" if i % 2 else "standard")
    capped.overrides.latency_sla_ms = 400 + 97 * (i % 13)
    capped.overrides.max_cost_usd = 0.0004 * (1 + i % 7)
    return [
        narrowed,
        capped,
        _req((USER, text), tier="premium", tenant="demo", request_id=f"r{i}"),
        _req((USER, text), tier="free", max_output_tokens=40),
        _req((USER, text), tenant="acme", task_hint=hint, request_id=f"h{i}"),
        _req((USER, text), tier="premium", max_output_tokens=1_000_000),
        _req(
            (SYSTEM, "Be brief."),
            (USER, "A first question."),
            (ASSISTANT, "Ask away."),
            (TOOL, "{}"),
            (USER, text),
            (ASSISTANT, "Partial answer"),
            tier="premium",
        ),
        named,
    ]


# Texts beyond ASCII: case changes that change the length ("İ".lower() is two characters),
# astral characters, Unicode spaces inside text, and long texts clipped between multi-byte
# characters at the head and the tail.
N_BEYOND = 15
UNICODE_EDGE = [
    "Résumez ce texte: «Straße» İstanbul ΣΑΣ",
    "😀 emoji 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 中文 text\u3000with an ideographic space",
    "\u00a0leading no-break space, trailing one\u00a0",
    "é" * 3000,
    "İ" * 2000 + "x" * 700 + "ß" * 600,
    "Q: 计算 17*23 = ? " * 400,
]


def _beyond_ascii(shared_data: Path, n: int) -> list[str]:
    """Real prompts with characters beyond ASCII: MMLU questions (English with typography and
    symbols) and the 7B rows' CMMLU and C-Eval questions (Chinese), ``n`` of each."""
    english = [r.prompt for r in load_pair(shared_data, "mmlu") if not r.prompt.isascii()]
    chinese = [r.prompt for r in load_7b(shared_data) if r.source in ("cmmlu", "ceval")]
    chinese = [p for p in chinese if not p.isascii()]
    assert len(english) > n and len(chinese) > n
    return english[:: len(english) // n][:n] + chinese[:: len(chinese) // n][:n]


def _prompts(store: ReplayStore, shared_data: Path, n: int = 250) -> list[str]:
    recorded = [p for p in store.prompts("gpt-4-1106-preview") if p.isascii()]
    assert len(recorded) > n
    edge = ["x" * 9000, "word " * 3000, "a\x00b", "2 + 2 = ?", "def f():\n    return 1\n" * 300]
    picked = recorded[:: len(recorded) // n][:n]
    return picked + edge + _beyond_ascii(shared_data, N_BEYOND) + UNICODE_EDGE


def test_native_decisions_equal_the_python_path(
    engine: Engine, store: ReplayStore, shared_data: Path
) -> None:
    """On real prompts from every benchmark in the data, with tiers, tenants, hints, output caps,
    multi-turn conversations, names and metadata: equal Decisions, apart from the ids and the
    decision time (and the request id the engine makes when the request has none)."""
    fp = fast_path(engine)
    assert fp is not None
    answered = 0
    prompts = _prompts(store, shared_data)
    assert sum(not p.isascii() for p in prompts) == 2 * N_BEYOND + len(UNICODE_EDGE)
    for i, text in enumerate(prompts):
        for req in _variants(text, i):
            raw = req.SerializeToString()
            out = fp.decide(raw)
            expected = _python(engine, raw)
            assert expected is not None
            if out is None:
                continue
            answered += 1
            got = engine_pb2.Decision.FromString(out)
            assert got.decision_id and got.decision_time_us >= 0
            random_id = not req.request_id
            assert _comparable(got, random_id) == _comparable(expected, random_id), (i, req.tier)
    assert answered == 8 * len(prompts)  # every one of these requests is a common one


def test_excluded_models_carry_the_python_reasons(engine: Engine) -> None:
    """Large prompts and output caps exclude models by context window, budget and SLA: the
    reasons, which quote numbers, are written the same way. When the SLA excludes every model the
    Python path keeps the fastest (a rare path it alone takes)."""
    fp = fast_path(engine)
    assert fp is not None
    seen = set()
    answered = 0
    for text in ("lorem ipsum dolor sit amet " * n for n in (10, 2000, 6000, 20000)):
        for tier in ("free", "standard", "premium"):
            raw = _req((USER, text), tier=tier, max_output_tokens=100_000).SerializeToString()
            out = fp.decide(raw)
            expected = _python(engine, raw)
            if out is None:
                assert expected is None or expected.reason.endswith("ms; 1 hop"), expected
                continue
            assert expected is not None
            answered += 1
            got = _comparable(engine_pb2.Decision.FromString(out), True)
            assert got == _comparable(expected, True)
            seen |= {c.excluded_reason.split(" ")[0] for c in got.signals.candidates}
    assert answered >= 6 and {"prompt", "typical", "not"} <= seen


def _group_field() -> bytes:
    return _req((USER, "hi")).SerializeToString() + b"\x4b\x4c"  # field 9, start/end group


def _fallbacks() -> list[tuple[str, bytes]]:
    r = _req((USER, "What is 2 + 2?"))

    def ov(**kw: object) -> engine_pb2.DecideRequest:
        r = _req((USER, "hi"), tier="free")
        for k, v in kw.items():
            if k == "allowed_models":
                r.overrides.allowed_models.extend(v)  # type: ignore[arg-type]
            else:
                setattr(r.overrides, k, v)
        return r

    twice = ov(max_cost_usd=0.5).SerializeToString() + ov(latency_sla_ms=900).SerializeToString()
    meta = _req((USER, "hi"))
    for k in range(65):
        meta.metadata[f"k{k}"] = "v"
    cases = {
        "non-ascii tenant": _req((USER, "hi"), tenant="acmé"),
        "non-ascii request id": _req((USER, "hi"), request_id="ré"),
        "non-ascii tier": _req((USER, "hi"), tier="prémium"),
        "unicode whitespace content": _req((USER, "\u3000\u00a0 \u2028")),
        "unicode whitespace turn": _req((SYSTEM, "\u2003"), (USER, "hi")),
        "non-ascii prompt over the limit": _req((USER, "é" * 2_000_000)),
        "zero sla override": ov(latency_sla_ms=0),
        "sla override too long": ov(latency_sla_ms=3_600_001),
        "zero cost override": ov(max_cost_usd=0.0),
        "negative cost override": ov(max_cost_usd=-1.0),
        "nan cost override": ov(max_cost_usd=float("nan")),
        "cost override too large": ov(max_cost_usd=10_001.0),
        "unknown model override": ov(allowed_models=["gpt-3.5-turbo-1106", "gpt-9"]),
        "non-ascii model override": ov(allowed_models=["modèle"]),
        "too many model overrides": ov(allowed_models=["gpt-3.5-turbo-1106"] * 65),
        "no allowed model left": ov(allowed_models=["gpt-4-1106-preview"]),  # free has none
        "no messages": engine_pb2.DecideRequest(),
        "unset role": _req((0, "hi")),
        "unknown role": _req((9, "hi")),
        "unknown task hint": _req((USER, "hi"), task_hint=42),
        "empty content": _req((USER, "")),
        "whitespace content": _req((USER, " \t\n\x1c\x1f")),
        "unknown tier": _req((USER, "hi"), tier="platinum"),
        "long request id": _req((USER, "hi"), request_id="x" * 257),
        "zero output tokens": _req((USER, "hi"), max_output_tokens=0),
        "too many output tokens": _req((USER, "hi"), max_output_tokens=1_000_001),
        "too much metadata": meta,
        "cascade and slow-path tier": _req((USER, "hi"), tier="batch"),
        "prompt over the limit": _req((USER, "lorem ipsum " * 100_000)),
    }
    raw = r.SerializeToString()
    out = [(name, req.SerializeToString()) for name, req in cases.items()]
    bad_utf8 = [
        ("surrogate", b"\xed\xa0\x80"),
        ("overlong", b"\xc0\xaf"),
        ("overlong 3-byte", b"\xe0\x80\xaf"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("lone continuation", b"ab\x80"),
        ("cut sequence", b"caf\xc3"),
    ]
    for name, content in bad_utf8:
        msg = common_pb2.ChatMessage(role=USER).SerializeToString()
        msg += b"\x12" + bytes([len(content)]) + content
        out.append((f"content {name}", b"\x22" + bytes([len(msg)]) + msg))
    out.append(("two overrides messages", twice))
    return [*out, ("group", _group_field()), ("truncated", raw[:-3]), ("garbage", b"\xff" * 9)]


@pytest.mark.parametrize(("name", "raw"), _fallbacks(), ids=[n for n, _ in _fallbacks()])
def test_anything_but_the_common_case_is_left_to_the_python_path(
    engine: Engine, name: str, raw: bytes
) -> None:
    fp = fast_path(engine)
    assert fp is not None
    assert fp.decide(raw) is None, name


def test_enforced_tenants_are_checked(engine: Engine) -> None:
    cfg = dataclasses.replace(engine.cfg, enforce_tenants=True)
    fp = fast_path(build_engine(cfg))
    assert fp is not None
    assert fp.decide(_req((USER, "hi")).SerializeToString()) is None
    assert fp.decide(_req((USER, "hi"), tenant="nobody").SerializeToString()) is None
    assert fp.decide(_req((USER, "hi"), tenant="acme").SerializeToString()) is not None


def test_content_is_decided_natively_exactly_when_it_is_well_formed_utf8(engine: Engine) -> None:
    """Random short byte strings as a message's content (around the lead and continuation byte
    ranges): the native path answers exactly when Python's strict decoder (which protobuf agrees
    with) accepts the bytes."""
    fp = fast_path(engine)
    assert fp is not None
    rng = random.Random(11)
    alphabet = [*range(0x80, 0x100), *range(0x80, 0xC0), ord("a")]
    kinds = set()
    for _ in range(4000):
        content = b"x" + bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
        msg = common_pb2.ChatMessage(role=USER).SerializeToString()
        msg += b"\x12" + bytes([len(content)]) + content
        try:
            content.decode("utf-8")
            well_formed = True
        except UnicodeDecodeError:
            well_formed = False
        kinds.add(well_formed)
        assert (fp.decide(b"\x22" + bytes([len(msg)]) + msg) is not None) == well_formed, content
    assert kinds == {True, False}


def test_the_prompt_limit_counts_characters_not_bytes(engine: Engine) -> None:
    """``max_prompt_chars`` counts characters, as ``len(str)`` does, across every turn."""
    small = build_engine(dataclasses.replace(engine.cfg, max_prompt_chars=100))
    fp = fast_path(small)
    assert fp is not None
    at_limit = _req((SYSTEM, "é" * 40), (USER, "日本" * 30)).SerializeToString()  # 100, 220 bytes
    over = _req((SYSTEM, "é" * 41), (USER, "日本" * 30)).SerializeToString()
    out = fp.decide(at_limit)
    expected = _python(small, at_limit)
    assert out is not None and expected is not None
    got = _comparable(engine_pb2.Decision.FromString(out), True)
    assert got == _comparable(expected, True)
    assert fp.decide(over) is None and _python(small, over) is None


def test_mutated_bytes_never_crash_and_never_disagree(engine: Engine) -> None:
    """Random byte flips, cuts and insertions in valid requests: the native path answers None or
    what the Python path answers, and never raises."""
    fp = fast_path(engine)
    assert fp is not None
    rng = random.Random(7)
    texts = ("Explain quicksort in two lines.", "Expliquez le « tri rapide » en deux lignes 😀.")
    base = [r.SerializeToString() for t in texts for r in _variants(t, 1)]
    answered = 0
    for _ in range(3000):
        b = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(b))
            op = rng.random()
            if op < 0.5:
                b[at] = rng.randrange(256)
            elif op < 0.75:
                del b[at]
            else:
                b.insert(at, rng.randrange(256))
        out = fp.decide(bytes(b))
        if out is None:
            continue
        answered += 1
        expected = _python(engine, bytes(b))
        assert expected is not None, bytes(b)
        got = engine_pb2.Decision.FromString(out)
        random_id = not engine_pb2.DecideRequest.FromString(bytes(b)).request_id
        assert _comparable(got, random_id) == _comparable(expected, random_id)
    assert answered > 100


def test_only_the_default_signals_get_a_native_path() -> None:
    cfg = load_config()
    assert fast_path(build_engine(cfg, fuse=False)) is None
    ort = build_engine(dataclasses.replace(cfg, linear_kernel="onnxruntime"))
    assert fast_path(ort) is None


def test_decision_ids_are_unique_hex_and_a_forked_child_draws_its_own(engine: Engine) -> None:
    """Ids come from the native path's own generator: 32 hex digits, no repeats, and a child
    process forked after some ids were drawn does not repeat the parent's next ones."""
    fp = fast_path(engine)
    assert fp is not None
    raw = _req((USER, "What is 2 + 2?")).SerializeToString()

    def ids(n: int) -> list[str]:
        out = []
        for _ in range(n):
            d = engine_pb2.Decision.FromString(fp.decide(raw) or b"")
            out += [d.decision_id, d.request_id]
        return out

    drawn = ids(2000)
    assert len(set(drawn)) == len(drawn)
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in drawn)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its ids and leave at once
        os.close(read)
        os.write(write, ",".join(ids(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        child = fh.read().split(",")
    os.waitpid(pid, 0)
    parent = ids(50)
    assert len(child) == 100 and not set(child) & set(parent)


def test_decisions_larger_than_the_write_buffer(tmp_path: Path) -> None:
    """A model name of a few KiB makes a Decision larger than the native writer's first buffer:
    it grows, and the bytes still equal the Python path's."""
    long_name = "modèle-économique-" * 200 + "claude-instant-v1"
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace(
        '"claude-instant-v1"', json.dumps(long_name)
    )
    path = tmp_path / "long.toml"
    path.write_text(text, encoding="utf-8")
    long_engine = build_engine(load_config(path))
    fp = fast_path(long_engine)
    assert fp is not None
    sizes = []
    for i in range(40):
        raw = _req(
            (USER, f"Summarize note {i}: the meeting moved."), tier="free"
        ).SerializeToString()
        out = fp.decide(raw)
        expected = _python(long_engine, raw)
        assert out is not None and expected is not None
        got = engine_pb2.Decision.FromString(out)
        assert _comparable(got, True) == _comparable(expected, True)
        sizes.append(len(out))
    assert min(sizes) > 4096  # the native writer starts with 4 KiB on the stack


def test_a_policy_with_more_models_than_the_native_path_holds_is_decided_in_python(
    tmp_path: Path,
) -> None:
    """The native path keeps per-model values in fixed arrays: a policy with more models has
    no native path (the servicer then takes the Python path for every request)."""
    extra = "".join(
        f'\n[[models]]\nname = "extra-{i}"\nprovider = "simulator"\ninput_usd_per_mtok = 1.0\n'
        f"output_usd_per_mtok = 2.0\ncontext_window = 16000\nmax_output_tokens = 1000\n"
        f"ttft_ms = 300\ntokens_per_s = 50\n[models.ability]\n"
        + "".join(f"{t.label} = 0.5\n" for t in TaskType)
        for i in range(_fastpath.MAX_MODELS)
    )
    path = tmp_path / "many.toml"
    path.write_text(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8") + extra, encoding="utf-8")
    many = build_engine(load_config(path))
    assert len(many.cfg.models) > _fastpath.MAX_MODELS
    assert fast_path(many) is None
    raw = _req((USER, "What is 2 + 2?"), tier="standard").SerializeToString()
    assert _python(many, raw) is not None
