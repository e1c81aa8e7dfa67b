"""Which generated hypothesis (`checks.hypotheses`) reproduces the user's numbers.

A hypothesis names the bug when it reproduces every compared quantity on two failing
problems (the smallest, and the longest sequence, so a bug that depends on time is told
apart), and then on every run.  When no single one does, hypotheses that each fix some
of the disagreeing quantities without breaking any are tried in pairs: two separable bugs
are both named.  The forward has its own hypotheses (gate order, a left-out or exchanged
activation, a complement used on the wrong side); a gate order that also reproduces all
the gradients means the code is consistent and only the layout's gate order differs.
"""
from __future__ import annotations

from dataclasses import replace

from checks.compare import derived, differing
from checks.forwardbugs import forward_hypotheses, forward_prediction
from checks.hypotheses import backward_hypotheses, both, forward_trace, pairs, predict

MAX_PARTIAL = 12   # hypotheses that fix part of the disagreement, tried in pairs


def chosen(comparison, rtol, atol):
    """The smallest failing run and the failing run with the most steps."""
    failing = [run for run in comparison.runs if differing(run[1], run[2], rtol, atol)]
    small = min(failing, key=lambda r: (r[0].T * r[0].B, r[0].T))
    long = max(failing, key=lambda r: (r[0].T, -r[0].B))
    return [small] if long is small else [small, long]


def _predictions(derivation, runs, hypothesis, traces):
    """What the hypothesis predicts for each run, or None if it cannot be evaluated."""
    try:
        return [predict(derivation, problem, hypothesis, trace) for (problem, _, _), trace in zip(runs, traces)]
    except (KeyError, ValueError, TypeError):   # a copy read before it is computed
        return None


def _remaining(derivation, runs, hypothesis, traces, rtol, atol, within=None):
    """(run, quantity) pairs the hypothesis leaves different; None if it cannot be evaluated
    or (given `within`) as soon as it makes a quantity differ that is not in `within`."""
    left = set()
    for k, (run, trace) in enumerate(zip(runs, traces)):
        predicted = _predictions(derivation, [run], hypothesis, [trace])
        if predicted is None:
            return None
        left |= {(k, name) for name in differing(run[1], predicted[0], rtol, atol)}
        if within is not None and not left <= within:
            return None
    return left


def backward_bugs(comparison, derivation, extra, relation, rtol, atol) -> list[str]:
    """Lines naming the hypotheses (or two separable bugs) that reproduce all of the user's
    numbers.  `extra` are more hypotheses (the one-change derivations) tried first;
    `relation(failures, rtol, atol)` names a simple relation (scaled, transposed, ...)."""
    runs = chosen(comparison, rtol, atol)
    traces = [forward_trace(derivation, problem) for problem, _, _ in runs]
    base = {(k, name) for k, (_, got, want) in enumerate(runs) for name in differing(got, want, rtol, atol)}
    full, partial, seen = [], [], set()
    for hypothesis in [*extra, *backward_hypotheses(derivation)]:
        left = _remaining(derivation, runs, hypothesis, traces, rtol, atol, within=base)
        if left is None:
            continue
        if not left and hypothesis.text not in seen:
            seen.add(hypothesis.text)
            full.append(hypothesis)
        elif left < base:
            partial.append((len(left), len(partial), hypothesis))
    everywhere = _everywhere(comparison, derivation, full, rtol, atol)
    if everywhere or not partial:
        return [f"yours matches the derivation exactly when {h.text}" for h in everywhere]
    best = [h for *_, h in sorted(partial)[:MAX_PARTIAL]]
    found = [both(a, b) for a, b in pairs(best)
             if _remaining(derivation, runs, both(a, b), traces, rtol, atol) == set()]
    for pair in _everywhere(comparison, derivation, found[:1], rtol, atol):
        return _separate([pair.text.split("; and ")[0], pair.text.split("; and ")[1]])
    for hypothesis in best[:3]:
        rest = _related(comparison, derivation, hypothesis, relation, rtol, atol)
        if rest:
            return _separate([hypothesis.text, *rest])
    return []


def _separate(texts):
    lines = [f"{len(texts)} separate bugs together reproduce all of your numbers:"]
    return lines + [f"({n}) {text}" for n, text in enumerate(texts, 1)]


def _related(comparison, derivation, hypothesis, relation, rtol, atol):
    """With `hypothesis` applied, the quantities still different, each with its simple
    relation to what the hypothesis predicts (on every run); [] unless every one has one."""
    runs = comparison.runs
    predicted = _predictions(derivation, runs, hypothesis, [forward_trace(derivation, p) for p, _, _ in runs])
    if predicted is None:
        return []
    failures = {}
    for (problem, got, _), want in zip(runs, predicted):
        for name in differing(got, want, rtol, atol):
            failures.setdefault(name, []).append((problem, got[name], want[name]))
    texts = {name: relation(failures[name], rtol, atol) for name in failures}
    if not failures or not all(texts.values()):
        return []
    grouped = {}
    for name, text in texts.items():   # a stacked gradient's blocks: one bug
        grouped.setdefault(text, []).append(f"d_{name}")
    return [f"{', '.join(names)} {'each ' if len(names) > 1 else ''}{text} (on top of that)"
            for text, names in grouped.items()]


def _everywhere(comparison, derivation, found, rtol, atol):
    """The hypotheses that reproduce every run, not only the two chosen."""
    keep = []
    for hypothesis in found:
        left = _remaining(derivation, comparison.runs, hypothesis,
                          [forward_trace(derivation, p) for p, _, _ in comparison.runs], rtol, atol)
        if left == set():
            keep.append(hypothesis)
    return keep


def forward_bugs(comparison, derivation, rtol, atol) -> list[str]:
    """Texts of the forward hypotheses that reproduce the user's forward outputs."""
    lines, seen = [], []
    for hypothesis in forward_hypotheses(derivation):
        predictions = []
        for problem, got, _ in comparison.runs:
            want = forward_prediction(derivation, problem, hypothesis)
            if want is None or differing({k: got[k] for k in want if k in got}, {k: v for k, v in want.items() if k in got},
                         rtol, atol):
                break
            predictions.append(want)
        else:
            signature = [p["hs"].tobytes() for p in predictions]
            if signature in seen:   # another description of the same function
                continue
            seen.append(signature)
            lines.append(hypothesis.text + _consistent(comparison, derivation, hypothesis, rtol, atol))
    return lines


def _consistent(comparison, derivation, hypothesis, rtol, atol) -> str:
    """', and its gradients are right for that forward' when they are (parameters permuted)."""
    for problem, got, _ in comparison.runs:
        if hypothesis.forward is not derivation.forward:   # not a permutation of parameters
            return ""
        permuted = hypothesis.params(problem.params)
        want = derived(derivation, replace(problem, params=permuted))
        back = {}
        for ours, theirs in _renaming(problem.params, permuted).items():
            back[theirs] = want[ours]
        want.update(back)
        if differing(got, want, rtol, atol):
            return ""
    return ("; its gradients are right for that forward: the code is consistent, and the layout's gate "
            "order is not your code's")


def _renaming(params, permuted):
    """Our name -> the name of the parameter whose value it holds after the permutation."""
    by_id = {id(v): k for k, v in params.items()}
    return {k: by_id[id(v)] for k, v in permuted.items() if by_id[id(v)] != k}
