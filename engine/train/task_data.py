"""The labeled set for the task-type classifier, built reproducibly from ``../shared/data``.

Real prompts whose corpus implies the task (see ``docs/signals.md`` for every rule):
gsm8k, MATH prealgebra and MMLU's mathematics subjects are math; HumanEval, MBPP and
HumanEval-JS are code; ARC, WinoGrande and the other MMLU subjects (exam multiple choice)
are reasoning; Vicuna-bench and Alpaca seed tasks map by category / flag / ``rule_label``;
the AlpacaEval instructions are labeled by ``rule_label`` (keyword rules, open_qa when none).

Classes without a corpus (extraction, summarization, translation, and more classification and
creative writing) are synthetic: instruction templates written here, wrapped around REAL
passages from the corpora (MMLU reading passages and case facts, gsm8k stories, Chinese CMMLU
questions for translation into English). Templates and passages are each split in two, and a
held-out synthetic row uses a held-out template AND a held-out passage; real prompts are held
out by a hash of their text. Everything is seeded, so the set is the same on every run.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from engine.train import corpora
from engine.train.corpora import Prompt
from modelroute.domain import TaskType

SEED = 7
PER_CLASS_CAP = 1600
SYNTH_PER_CLASS = 1400

MATH_SUBJECTS = {
    "abstract_algebra",
    "college_mathematics",
    "elementary_mathematics",
    "high_school_mathematics",
    "high_school_statistics",
}
VICUNA = {
    "coding": TaskType.CODE,
    "math": TaskType.MATH,
    "fermi": TaskType.REASONING,
    "writing": TaskType.CREATIVE_WRITING,
    "roleplay": TaskType.CREATIVE_WRITING,
}

# Keyword rules over real instructions, tried in order; the first match wins.
RULES: tuple[tuple[TaskType, re.Pattern[str]], ...] = (
    (
        TaskType.TRANSLATION,
        re.compile(r"\btranslat\w*\b|\bin (french|spanish|german|english)\b", re.I),
    ),
    (
        TaskType.SUMMARIZATION,
        re.compile(r"\bsummar\w+|\btl;?dr\b|\bin (one|a few) sentences?\b", re.I),
    ),
    (
        TaskType.EXTRACTION,
        re.compile(r"\bextract\b|\blist (all|every) (the )?\w+ (mentioned|in the)", re.I),
    ),
    (
        TaskType.CLASSIFICATION,
        re.compile(r"\bclassif\w+|\bcategori[sz]e\b|\bsentiment\b|\bwhich category\b", re.I),
    ),
    (
        TaskType.CODE,
        re.compile(
            r"\b(python|javascript|sql|c\+\+|java|bash|regex|html|css|function|code|program|script|api)\b|```",
            re.I,
        ),
    ),
    (
        TaskType.CREATIVE_WRITING,
        re.compile(
            r"\b(poem|story|song|lyrics|haiku|limerick|essay|fiction|slogan|joke|rap|tweet|blog post|script for)\b",
            re.I,
        ),
    ),
    (
        TaskType.MATH,
        re.compile(
            r"\b(solve|equation|integral|derivative|calculate|compute)\b|\d+ ?[-+*/^] ?\d+", re.I
        ),
    ),
)


def rule_label(text: str, default: TaskType = TaskType.OPEN_QA) -> TaskType:
    for task, pattern in RULES:
        if pattern.search(text):
            return task
    return default


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    task: TaskType
    source: str
    held_out: bool


def _held(text: str) -> bool:
    return zlib.crc32(text.encode("utf-8")) % 5 == 0


def real_examples(data: Path) -> list[Example]:
    """Real prompts with a label implied by their corpus (or by ``rule_label``)."""
    pairs: list[tuple[Prompt, TaskType]] = []
    pairs += [(p, TaskType.MATH) for p in corpora.gsm8k(data)]
    pairs += [(p, TaskType.MATH) for p in corpora.multi_model_7b(data, "MATH_prealgebra")]
    for p in corpora.mmlu(data):
        pairs.append((p, TaskType.MATH if p.label in MATH_SUBJECTS else TaskType.REASONING))
    pairs += [(p, TaskType.CODE) for p in corpora.human_eval(data) + corpora.mbpp(data)]
    pairs += [(p, TaskType.CODE) for p in corpora.multi_model_7b(data, "javascript")]
    for p in corpora.routerbench(data):
        pairs.append((p, TaskType.CODE if p.label == "mbpp" else TaskType.REASONING))
    for name in ("arc_challenge_train", "arc_easy_train"):
        pairs += [(p, TaskType.REASONING) for p in corpora.multi_model_7b(data, name)]
    for p in corpora.vicuna(data):
        pairs.append((p, VICUNA.get(p.label, TaskType.OPEN_QA)))
    for p in corpora.alpaca_seed(data):
        cls = p.label.endswith("|cls")
        pairs.append((p, TaskType.CLASSIFICATION if cls else rule_label(p.text)))
    pairs += [(p, rule_label(p.text)) for p in corpora.alpaca_eval(data)]
    seen: set[str] = set()
    out: list[Example] = []
    for p, task in pairs:
        if p.text.strip() and p.text not in seen:
            seen.add(p.text)
            out.append(Example(p.text, task, p.corpus, _held(p.text)))
    return out


def passages(data: Path) -> list[str]:
    """Real English passages: MMLU reading passages and case facts, gsm8k stories."""
    out = []
    for p in corpora.mmlu(data):
        stem = p.text.split("\nA.")[0].strip()
        if 300 <= len(stem) <= 2500:
            out.append(stem)
    rng = random.Random(SEED)
    stories = [p.text for p in corpora.gsm8k(data)]
    out += rng.sample(stories, 1500)
    return sorted(set(out))


def chinese_passages(data: Path) -> list[str]:
    return sorted({p.text.split("\nA.")[0] for p in corpora.multi_model_7b(data, "cmmlu_test")})


# Instruction templates for the classes without a corpus; {p} is a real passage.
TEMPLATES: dict[TaskType, tuple[str, ...]] = {
    TaskType.SUMMARIZATION: (
        "Summarize the following passage in two sentences.\n\n{p}",
        "{p}\n\nTL;DR:",
        "Give me the gist of this text:\n{p}",
        "Write a one-paragraph abstract of the text below.\n\n{p}",
        "What are the main points of this passage? Keep it brief.\n\n{p}",
        "Condense this into three bullet points:\n\n{p}",
        'Provide a short summary for a busy reader:\n"""\n{p}\n"""',
        "{p}\n\nSummarize the above in plain language.",
        "Can you shorten this to a couple of lines while keeping the key facts?\n\n{p}",
        "Here is a text:\n{p}\nBriefly recap what it says.",
        "Write a headline and a one-sentence summary for the following:\n\n{p}",
        "Please create a concise overview of this document.\n\n{p}",
    ),
    TaskType.EXTRACTION: (
        "Extract every person's name mentioned in the passage below.\n\n{p}",
        "List all the numbers in the following text and what each refers to.\n\n{p}",
        "From the text, pull out all dates and events as a JSON list.\n\n{p}",
        'Return a JSON object with the keys "people", "places" and "dates" filled from this text:\n{p}',
        "{p}\n\nWhat are the named entities in the paragraph above? Output them as a bulleted list.",
        "Find and list all monetary amounts and quantities mentioned:\n\n{p}",
        "Parse the following into a table with columns: entity, type, value.\n\n{p}",
        'Identify the key terms in this passage and return them comma-separated.\n"""\n{p}\n"""',
        "Pull the organizations and locations out of this text. Only list them, no commentary.\n\n{p}",
        "{p}\n\nExtract the subject, the action and the outcome from the text above as key: value lines.",
        "Read the text and fill in this form. Who: ... When: ... Where: ... Amounts: ...\n\n{p}",
        "Give me all the proper nouns that appear in the following passage.\n\n{p}",
    ),
    TaskType.CLASSIFICATION: (
        "Classify the sentiment of the following text as positive, negative or neutral.\n\n{p}",
        "Which category best fits this passage: law, history, medicine, business or everyday life? Answer with the category only.\n\n{p}",
        "Is the following text about sports, politics, science or money? Reply with one word.\n\n{p}",
        "{p}\n\nLabel the text above as formal or informal.",
        "Determine whether the following statement is a fact or an opinion:\n{p}",
        "Tag this text with its topic from [legal, historical, medical, arithmetic, other].\n\n{p}",
        "Would you say the tone of this passage is optimistic, pessimistic or neutral? Just give the label.\n\n{p}",
        "Decide if this message is spam or not spam.\n\n{p}",
        'Assign one of the labels URGENT, ROUTINE or IGNORE to the following text.\n"""\n{p}\n"""',
        "{p}\n\nCategory (choose one: narrative, argument, description, instruction):",
        "Rate the reading level of this text as easy, medium or hard. Output only the rating.\n\n{p}",
        "Is the author of the following text likely an expert or a layperson? Answer expert or layperson.\n\n{p}",
    ),
    TaskType.TRANSLATION: (
        "Translate the following into French:\n\n{p}",
        "How would you say this in Spanish?\n{p}",
        "Render this text in German.\n\n{p}",
        'Please translate to Japanese:\n"{p}"',
        "{p}\n\nTranslate the above into Italian.",
        "Translate this paragraph to Portuguese, keeping the tone.\n\n{p}",
        "Can you give me a Russian version of this text?\n\n{p}",
        "English to Korean, please:\n{p}",
        "Turn this into fluent Dutch:\n\n{p}",
        "I need this in Chinese (simplified):\n{p}",
        "Provide a faithful Arabic translation of the following.\n\n{p}",
        "What is the Turkish translation of: {p}",
    ),
    TaskType.CREATIVE_WRITING: (
        "Write a short story inspired by this situation:\n{p}",
        "Compose a poem about the following scene.\n\n{p}",
        "Turn this into song lyrics with a chorus:\n\n{p}",
        "{p}\n\nWrite a dramatic monologue from the point of view of someone in the text above.",
        "Write a limerick based on this:\n{p}",
        "Imagine you are a novelist. Write the opening paragraph of a novel that begins with this event:\n\n{p}",
        "Create a children's bedtime story using the characters here:\n{p}",
        "Write a haiku sequence capturing the mood of this passage.\n\n{p}",
        "Write a humorous blog post that retells this:\n\n{p}",
        "Pretend you are a character in the following and write a diary entry.\n\n{p}",
        "Write a screenplay scene based on this text, with dialogue.\n\n{p}",
        "Write an epic poem in the style of an ancient ballad about:\n{p}",
    ),
}
ZH_TEMPLATES = (
    "Translate this into English:\n\n{p}",
    "What does this mean in English?\n{p}",
    "{p}\n\n请把上面的内容翻译成英文。",
    'English translation of the following, please:\n"{p}"',
    "{p}\n\nTranslate to English and keep the answer options.",
    "把下面这段话翻译成英语：\n{p}",
)


def _split(items: list[str], rng: random.Random, held_share: float) -> tuple[list[str], list[str]]:
    items = list(items)
    rng.shuffle(items)
    k = max(1, round(len(items) * held_share))
    return items[k:], items[:k]


def _short(passage: str, rng: random.Random) -> str:
    """A passage cut to 1-4 sentences, for translation and creative prompts."""
    sentences = re.split(r"(?<=[.!?])\s+", passage.strip())
    n = rng.randint(1, 4)
    return " ".join(sentences[:n])


def synthetic_examples(data: Path) -> list[Example]:
    rng = random.Random(SEED)
    p_train, p_held = _split(passages(data), rng, 0.25)
    z_train, z_held = _split(chinese_passages(data), rng, 0.25)
    out: list[Example] = []
    for task, templates in TEMPLATES.items():
        t_train, t_held = _split(list(templates), rng, 0.25)
        short = task in (TaskType.TRANSLATION, TaskType.CREATIVE_WRITING)
        for held, temps, pool in ((False, t_train, p_train), (True, t_held, p_held)):
            n = SYNTH_PER_CLASS if not held else SYNTH_PER_CLASS // 4
            for _ in range(n):
                p = rng.choice(pool)
                p = _short(p, rng) if short else p
                out.append(Example(rng.choice(temps).format(p=p), task, "synthetic", held))
    zt_train, zt_held = _split(list(ZH_TEMPLATES), rng, 0.34)
    for held, temps, pool in ((False, zt_train, z_train), (True, zt_held, z_held)):
        for _ in range(300 if not held else 80):
            text = rng.choice(temps).format(p=rng.choice(pool))
            out.append(Example(text, TaskType.TRANSLATION, "synthetic_zh", held))
    return out


def build(data: Path) -> list[Example]:
    """Real and synthetic examples, each class capped (seeded) so no corpus swamps the rest."""
    rng = random.Random(SEED)
    by_class: dict[tuple[TaskType, bool], list[Example]] = {}
    for ex in real_examples(data) + synthetic_examples(data):
        by_class.setdefault((ex.task, ex.held_out), []).append(ex)
    out: list[Example] = []
    for (_, held), items in sorted(by_class.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cap = PER_CLASS_CAP if not held else PER_CLASS_CAP // 4
        # Real prompts first, synthetic filling the rest, so corpus classes stay real.
        real = [e for e in items if not e.source.startswith("synthetic")]
        synth = [e for e in items if e.source.startswith("synthetic")]
        rng.shuffle(real)
        rng.shuffle(synth)
        out.extend((real + synth)[:cap])
    return out
