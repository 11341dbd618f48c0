"""The wide per-head route choice in a deployable form: training-constant standardization.

``engine.eval.wide_select`` standardizes each candidate route over the scored set's prompts
(z over H's batch). A request-time router sees one prompt at a time, so this form takes every
constant from the training rows of the fit that scores the prompt. The rule, written down
before any of its figures was seen (2026-11-29); steps 1-3 and 5 are those of ``wide_select``:

4'. Training rows of a fit: every 7B-model row and RouterBench row whose source the fit did not
    exclude (the fit that scores H excludes H; the one that scores a validation set V excludes
    H and V), each scored with the head the engine's task classifier gives its prompt (as a
    request is scored). For the n-gram route ``a`` and the CV-embedding route ``c`` of that fit,
    ``(m_a, s_a)`` and ``(m_c, s_c)`` are the mean and standard deviation of their scores over
    these rows. Candidates of a prompt: ``z_a = (a - m_a) / s_a``, ``z_c = (c - m_c) / s_c`` and
    the mean route ``z_m = (z_a + z_c - m_s) / s_s``, with ``(m_s, s_s)`` the mean and standard
    deviation of ``z_a + z_c`` over the same training rows. Chosen (over ``(z_a + z_c) / 2``)
    because it keeps the mean candidate on the unit scale of the two others, as the batch
    form's ``z(z(a) + z(c))`` does: a head that takes the mean is not compressed against a head
    that takes a single route when prompts of both heads share one threshold.
5'. The per-head choice is step 5 with the APGR metric on these candidates of the evidence sets
    (the constants of the fit that scored each set).
6'. H's score of a prompt: its head's candidate with the constants of the fit that scores H. No
    statistic of H's prompts is used: a prompt's score does not depend on the others scored.

The same rule on all data (every source validates) gives the slow path's per-head routes;
``engine.train.train_embed_router`` writes them and the constants into ``router_embed.json``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.eval.matrix_route import MatrixRoute, Part, View, _rows
from engine.eval.route_select import Corpus
from engine.router.route import RouteConfig

Arr = npt.NDArray[np.float64]
WIDE_TRAIN = (
    "hybrid (wide choice, APGR, training-constant scale): per head n-gram / CV-embedding / "
    "mean, chosen on every source not held out; constants from the fit's training rows"
)
TRAIN_METRIC = "apgr, training-constant scale"
# the names the runtime's router_embed.json uses for the three candidates
RUNTIME_NAMES = {"n-gram": "ngram", "embedding": "embedding", "mean": "mean"}


def _mean_std(x: Arr) -> tuple[float, float]:
    return float(x.mean()), float(x.std() or 1.0)


@dataclass(frozen=True, slots=True)
class Scale:
    """Training-row standardization constants (mean, std) of the two routes and their sum."""

    ngram: tuple[float, float]
    embed: tuple[float, float]
    total: tuple[float, float]  # of z_a + z_c

    def to_json(self) -> dict[str, list[float]]:
        return {"ngram": list(self.ngram), "embedding": list(self.embed), "mean": list(self.total)}


def fit_scale(a_train: Arr, c_train: Arr) -> Scale:
    """Step 4': the constants from the two routes' scores over the same training rows."""
    na, nc = _mean_std(a_train), _mean_std(c_train)
    total = (a_train - na[0]) / na[1] + (c_train - nc[0]) / nc[1]
    return Scale(na, nc, _mean_std(total))


def scaled_candidates(a: Arr, c: Arr, scale: Scale) -> dict[str, Arr]:
    """The three candidates of each prompt with training constants (no batch statistic)."""
    za = (a - scale.ngram[0]) / scale.ngram[1]
    zc = (c - scale.embed[0]) / scale.embed[1]
    zm = (za + zc - scale.total[0]) / scale.total[1]
    return {"n-gram": za, "embedding": zc, "mean": zm}


def training_rows(corpus: Corpus, skip: Collection[str]) -> tuple[list[int], list[int]]:
    """Indices of the 7B-model rows and the RouterBench rows a fit without ``skip`` trains on."""
    return (
        [i for i, r in enumerate(corpus.seven) if r.source not in skip],
        [i for i, r in enumerate(corpus.bench) if r.source not in skip],
    )


def training_scores(
    route: MatrixRoute,
    view: View,
    corpus: Corpus,
    skip: Collection[str],
    cfg: RouteConfig,
    heads: tuple[Sequence[str], Sequence[str]],
) -> Arr:
    """A fitted route's scores of its training rows; ``heads``: the task classifier's head of
    every 7B row and every RouterBench row."""
    i7, ib = training_rows(corpus, skip)
    a = route.scores(
        Part(_rows(view.seven.x, i7), view.seven.dense[i7]), [heads[0][i] for i in i7], cfg
    )
    b = route.scores(
        Part(_rows(view.bench.x, ib), view.bench.dense[ib]), [heads[1][i] for i in ib], cfg
    )
    return np.concatenate([a, b])


def scale_of(
    routes: Sequence[MatrixRoute],
    views: Sequence[View],
    cfgs: Sequence[RouteConfig],
    corpus: Corpus,
    skip: Collection[str],
    heads: tuple[Sequence[str], Sequence[str]],
) -> Scale:
    """Step 4' for one pair of fits (the n-gram one first, then the embedding one)."""
    a, c = (
        training_scores(r, v, corpus, skip, cfg, heads)
        for r, v, cfg in zip(routes, views, cfgs, strict=True)
    )
    return fit_scale(a, c)


def pick(heads: Sequence[str], cands: Mapping[str, Arr], route: Mapping[str, str]) -> Arr:
    """Each prompt's score from the candidate its head was given (``route``: head -> name)."""
    from engine.eval.wide_select import DEFAULT

    out: Arr = np.array([cands[route.get(h, DEFAULT)][i] for i, h in enumerate(heads)])
    return out


__all__ = [
    "RUNTIME_NAMES",
    "TRAIN_METRIC",
    "WIDE_TRAIN",
    "Scale",
    "fit_scale",
    "pick",
    "scale_of",
    "scaled_candidates",
    "training_rows",
    "training_scores",
]
