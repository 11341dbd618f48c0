"""The default signals read in one flat step, for the Decide fast path.

``Engine`` reads its signals through their objects: ``TokenCounter``, ``TaskClassifier`` and
``LearnedRouter`` (difficulty and per-model success), the classifier's and the router's heads
sharing one fused linear group (``engine.onnx_group``). Through those objects a decision walks
about 25 small Python functions (views, properties, the group's per-thread cache, wrappers) around
five C calls; inside the server, where that code is cold between requests, the walk costs more
than the arithmetic. ``FusedSignals.read`` makes the same C calls with the same constants from one
function.

It exists for that default composition only: ``FusedSignals.of`` returns None for other signal
classes (test fakes), the onnxruntime kernel, or a router that still needs its n-gram heads, and
the engine then reads the objects. ``tests/unit/test_fused_signals.py`` holds the two equal on
real prompts.
"""

from __future__ import annotations

import struct
from typing import Any, TypeAlias

import numpy as np
from typing_extensions import Buffer

from engine._featurize import features_ascii
from engine._heads import activate, linear_logits, links
from engine.features import HASH_BITS, HEAD_CHARS, TAIL_CHARS, featurize
from engine.onnx_group import GroupMember, NativeKernel
from engine.policy import SignalValues
from engine.router.learned import FlatRouter, LearnedRouter
from engine.router.route import difficulty_level, route_score
from engine.signals.base import prompt_of
from engine.signals.task import TaskClassifier
from engine.signals.tokens import TokenCounter
from modelroute.domain import DecideInput, TaskType

_FLOAT32 = struct.Struct("<f")
_Buf: TypeAlias = Buffer | np.ndarray[Any, Any]


class FusedSignals:
    def __init__(
        self,
        tokens: TokenCounter,
        kernel: NativeKernel,
        task: TaskClassifier,
        task_name: str,
        router: FlatRouter,
        difficulty_name: str,
    ) -> None:
        self._count = tokens.count
        self.encoding = tokens.encoding
        self.kernel = kernel
        self.task_slot = kernel.names.index(task_name)
        self.difficulty_slot = kernel.names.index(difficulty_name)
        self.classes = task.classes
        self.router = router
        self.length_offset = 4 * router.route.length_feature

    @classmethod
    def of(cls, tokens: object, task: object, router: object) -> FusedSignals | None:
        """The flat reader of these three signals, or None when they are not the default ones
        over one natively run group."""
        if (
            type(tokens) is not TokenCounter
            or type(task) is not TaskClassifier
            or type(router) is not LearnedRouter
        ):
            return None
        flat = router.flat_parts()
        head, diff = task.model, flat.difficulty if flat is not None else None
        if (
            flat is None
            or not isinstance(head, GroupMember)
            or not isinstance(diff, GroupMember)
            or head.group is not diff.group
        ):
            return None
        kernel = head.group.native_kernel()
        if kernel is None:
            return None
        return cls(tokens, kernel, task, head.name, flat, diff.name)

    def read(self, inp: DecideInput) -> SignalValues:
        """The values ``Engine`` reads from the three signal objects, for a validated ``inp``."""
        prompt = prompt_of(inp.messages)
        raw = features_ascii(prompt, HASH_BITS, HEAD_CHARS, TAIL_CHARS)
        idx: _Buf
        val: _Buf
        dense: _Buf
        if raw is None:  # not pure ASCII: the general path, as numpy arrays
            f = featurize(prompt)
            idx, val, dense = f.indices, f.values, f.dense
            length = float(f.dense[self.router.route.length_feature])
        else:
            idx, val, dense = raw
            length = _FLOAT32.unpack_from(raw[2], self.length_offset)[0]
        k = self.kernel
        probs = activate(
            linear_logits(k.table, k.k, k.mask, k.base, k.bias, idx, val, dense), k.spec
        )
        task: TaskType | None = inp.task_hint
        if task is None:
            scores = probs[self.task_slot]
            confidence = max(scores)
            task = self.classes[scores.index(confidence)]
        else:
            confidence = 1.0
        r = self.router
        slot, head, family = r.head[task]
        difficulty = probs[self.difficulty_slot][slot]
        route = route_score(difficulty, head, length, r.route, r.stats, family)
        p = links(route, r.link_a, r.link_b, r.link_c, difficulty_level(difficulty))
        quality = dict(zip(r.link_names, p, strict=True))
        return SignalValues(task, confidence, difficulty, self._count(inp.messages), quality)
