"""The labeled set for the task-type classifier, built reproducibly from ``../shared/data``.

Real prompts whose corpus implies the task (see ``docs/signals.md`` for every rule):
gsm8k, MATH prealgebra and MMLU's mathematics subjects are math; HumanEval, MBPP and
HumanEval-JS are code; ARC, WinoGrande and the other MMLU subjects (exam multiple choice)
are reasoning; Vicuna-bench and Alpaca seed tasks map by category / flag / ``rule_label``;
the AlpacaEval instructions are labeled by ``rule_label`` (keyword rules, open_qa when none).

Classes without a corpus (extraction, summarization, translation, and more classification and
creative writing) are synthetic: instruction phrasings written here (``INSTRUCTIONS``), placed
by one of ``FRAMES`` around REAL passages from the corpora (MMLU reading passages and case
facts, model answers stored in RouterBench rows, long AlpacaEval requests; Chinese CMMLU
questions for translation into English). Phrasings and passages are each split in two, and a
held-out synthetic row uses a held-out phrasing AND a held-out passage; real prompts are held
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
    """Real English passages: MMLU reading passages and case facts, long model answers
    stored in RouterBench rows, long AlpacaEval requests."""
    out = []
    for p in corpora.mmlu(data):
        stem = p.text.split("\nA.")[0].strip()
        if 300 <= len(stem) <= 2500:
            out.append(stem)
    out += [p.text for p in corpora.routerbench_responses(data) if "def " not in p.text]
    out += [p.text for p in corpora.alpaca_eval(data) if len(p.text) >= 300]
    return sorted(set(out))


def chinese_passages(data: Path) -> list[str]:
    return sorted({p.text.split("\nA.")[0] for p in corpora.multi_model_7b(data, "cmmlu_test")})


# Instruction phrasings for the classes without a corpus. A synthetic prompt is one phrasing
# placed around a real passage by one of FRAMES; held-out rows use held-out phrasings only.
INSTRUCTIONS: dict[TaskType, tuple[str, ...]] = {
    TaskType.SUMMARIZATION: (
        "Summarize the following passage in two sentences.",
        "TL;DR:",
        "Give me the gist of this text.",
        "Write a one-paragraph abstract of this.",
        "What are the main points here? Keep it brief.",
        "Condense this into three bullet points.",
        "Provide a short summary for a busy reader.",
        "Summarize the above in plain language.",
        "Can you shorten this to a couple of lines while keeping the key facts?",
        "Briefly recap what this says.",
        "Write a headline and a one-sentence summary.",
        "Please create a concise overview of this document.",
        "Sum this up for me.",
        "In under 50 words, what is this about?",
        "Boil this down to its essentials.",
        "Give a brief synopsis of the passage.",
        "Write an executive summary of the text.",
        "Shorten this text to a single paragraph.",
        "Summarise the key takeaways.",
        "What's the short version of this?",
    ),
    TaskType.EXTRACTION: (
        "Extract every person's name mentioned in the passage.",
        "List all the numbers in this text and what each refers to.",
        "Pull out all dates and events as a JSON list.",
        'Return a JSON object with the keys "people", "places" and "dates" filled from this text.',
        "What are the named entities in this paragraph? Output them as a bulleted list.",
        "Find and list all monetary amounts and quantities mentioned.",
        "Parse this into a table with columns: entity, type, value.",
        "Identify the key terms in this passage and return them comma-separated.",
        "Pull the organizations and locations out of this text. Only list them.",
        "Extract the subject, the action and the outcome as key: value lines.",
        "Fill in this form from the text. Who: ... When: ... Where: ... Amounts: ...",
        "Give me all the proper nouns that appear in the text.",
        "Extract the email addresses, phone numbers and names, if any.",
        "Output a CSV of every item and its quantity mentioned in the text.",
        "Which places are mentioned? Return only their names.",
        "Get the ages, prices and counts from this text as JSON.",
        "Retrieve every quoted statement and who said it.",
        "Pick out the technical terms used below.",
        "Return the list of all people and their roles mentioned.",
        "Capture all the facts with numbers in them as a bullet list.",
    ),
    TaskType.CLASSIFICATION: (
        "Classify the sentiment as positive, negative or neutral.",
        "Which category fits best: law, history, medicine, business or everyday life? Answer with the category only.",
        "Is this about sports, politics, science or money? Reply with one word.",
        "Label this text as formal or informal.",
        "Determine whether the statement is a fact or an opinion.",
        "Tag this text with its topic from [legal, historical, medical, arithmetic, other].",
        "Is the tone optimistic, pessimistic or neutral? Just give the label.",
        "Decide if this message is spam or not spam.",
        "Assign one of the labels URGENT, ROUTINE or IGNORE.",
        "Category (choose one: narrative, argument, description, instruction):",
        "Rate the reading level as easy, medium or hard. Output only the rating.",
        "Is the author likely an expert or a layperson? Answer expert or layperson.",
        "Classify the intent of this message: question, complaint, request or praise.",
        "Does this text contain toxic language? Answer yes or no.",
        "Which department should handle this: billing, support, sales or legal?",
        "Label the emotion expressed: joy, anger, fear, sadness or surprise.",
        "Categorize this text by genre.",
        "Put this into one of two buckets: relevant or irrelevant to finance.",
        "Is the following claim true or false?",
        "Sort this into the right class: A (news), B (opinion), C (advertisement).",
    ),
    TaskType.TRANSLATION: (
        "Translate the following into {lang}.",
        "How would you say this in {lang}?",
        "Render this text in {lang}.",
        "Please translate to {lang}.",
        "Translate the above into {lang}.",
        "Translate this paragraph to {lang}, keeping the tone.",
        "Can you give me a {lang} version of this text?",
        "English to {lang}, please.",
        "Turn this into fluent {lang}.",
        "I need this in {lang}.",
        "Provide a faithful {lang} translation.",
        "What is the {lang} translation of this?",
        "Convert this text from English to {lang}.",
        "Say this in {lang} for a native speaker.",
        "Translate word for word into {lang}.",
        "Localize this message for a {lang}-speaking audience.",
        "Could you translate this for my {lang} colleague?",
        "{lang} translation:",
        "Rewrite this in {lang}.",
        "Help me translate this into {lang}.",
    ),
    TaskType.CREATIVE_WRITING: (
        "Write a short story inspired by this.",
        "Compose a poem about this scene.",
        "Turn this into song lyrics with a chorus.",
        "Write a dramatic monologue from the point of view of someone in this text.",
        "Write a limerick based on this.",
        "Write the opening paragraph of a novel that begins with this event.",
        "Create a children's bedtime story using these characters.",
        "Write a haiku sequence capturing the mood of this.",
        "Write a humorous blog post that retells this.",
        "Pretend you are a character here and write a diary entry.",
        "Write a screenplay scene based on this, with dialogue.",
        "Write an epic poem in the style of an ancient ballad about this.",
        "Write a sonnet about it.",
        "Invent a fairy tale that starts from this.",
        "Write a rap verse about this.",
        "Craft a short piece of flash fiction from this premise.",
        "Write a letter from one of the people involved, in a vivid voice.",
        "Write a free-verse poem reflecting on this.",
        "Turn this into a suspenseful mystery story.",
        "Write a comedic sketch based on this.",
    ),
}
LANGUAGES = (
    "French",
    "Spanish",
    "German",
    "Italian",
    "Portuguese",
    "Japanese",
    "Korean",
    "Chinese",
    "Russian",
    "Dutch",
    "Arabic",
    "Turkish",
    "Hindi",
    "Polish",
    "Swedish",
    "Greek",
)
FRAMES = (
    "{i}\n\n{p}",
    "{i}\n{p}",
    "{p}\n\n{i}",
    '{i}\n"""\n{p}\n"""',
    "Text: {p}\n\nTask: {i}",
    "{i} {p}",
    '{i}\n\n"{p}"',
    "{p}\n{i}",
)
ZH_INSTRUCTIONS = (
    "Translate this into English.",
    "What does this mean in English?",
    "请把这段内容翻译成英文。",
    "English translation, please.",
    "Translate to English and keep the answer options.",
    "把下面这段话翻译成英语。",
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


def _synth(
    task: TaskType, instructions: list[str], pool: list[str], rng: random.Random, n: int
) -> list[str]:
    out = []
    for _ in range(n):
        p = rng.choice(pool)
        if task in (TaskType.TRANSLATION, TaskType.CREATIVE_WRITING) or rng.random() < 0.3:
            p = _short(p, rng)
        inst = rng.choice(instructions).format(lang=rng.choice(LANGUAGES))
        out.append(rng.choice(FRAMES).format(i=inst, p=p))
    return out


def synthetic_examples(data: Path) -> list[Example]:
    rng = random.Random(SEED)
    p_train, p_held = _split(passages(data), rng, 0.25)
    z_train, z_held = _split(chinese_passages(data), rng, 0.25)
    out: list[Example] = []
    for task, phrasings in INSTRUCTIONS.items():
        i_train, i_held = _split(list(phrasings), rng, 0.25)
        for text in _synth(task, i_train, p_train, rng, SYNTH_PER_CLASS):
            out.append(Example(text, task, "synthetic", False))
        for text in _synth(task, i_held, p_held, rng, SYNTH_PER_CLASS // 4):
            out.append(Example(text, task, "synthetic", True))
    zi_train, zi_held = _split(list(ZH_INSTRUCTIONS), rng, 0.34)
    for held, insts, pool in ((False, zi_train, z_train), (True, zi_held, z_held)):
        for _ in range(300 if not held else 80):
            text = rng.choice(FRAMES).format(i=rng.choice(insts), p=rng.choice(pool))
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
