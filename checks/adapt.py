"""Code in another style, called through our sequence contract (a `checks.layout.Layout`).

`Adapted(module, layout, cell, call)` has `forward(params, xs, state0)` and
`backward(params, cache, dhs, dstateT)` of the generated module's contract: it packs our
parameters into the user's layout, reorders arrays, calls the user's functions by their
`Signature` (through `call`, which turns the user's exceptions into one-line errors) and
reads the results back.  For step functions it runs backpropagation through time itself:
step t's backward gets the whole gradient of the new state (dL/dh_t plus what step t+1
sent back) and the parameter gradients are summed over steps.

What a signature leaves out is recorded in `contract` (a `Contract`): the parent makes
its problems fit (zero initial state, no final-state gradient, dL/dh at the last step
only or from a built-in loss, batches of one) and leaves out the rows it cannot check.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from checks.layout import check, ours, pack, unpack
from derive.errors import DeriveError


@dataclass(frozen=True)
class Contract:
    """The parts of the full contract a user's code does without (JSON-able)."""

    zero_state0: tuple[str, ...] = ()   # states whose initial value is zero
    zero_final: tuple[str, ...] = ()    # states given no gradient after the last step
    upstream: str = "all"               # dL/dh: "all" steps, "last" step only, "sum" built in
    batch_one: bool = False
    unchecked: tuple[tuple[str, str], ...] = ()   # (row, why it cannot be checked)
    blocks: tuple[str, ...] = ()        # which of our parameters each stacked one holds

    def adjust(self, problem):
        """`problem` as this code can take it."""
        p = problem
        if self.batch_one:
            p = replace(p, B=1, xs=p.xs[:, :1], dhs=p.dhs[:, :1], state0={k: v[:1] for k, v in p.state0.items()},
                        dstateT={k: v[:1] for k, v in p.dstateT.items()})
        state0 = {k: np.zeros_like(v) if k in self.zero_state0 else v for k, v in p.state0.items()}
        dstateT = {k: np.zeros_like(v) if k in self.zero_final else v for k, v in p.dstateT.items()}
        dhs = {"all": p.dhs, "sum": np.ones_like(p.dhs),
               "last": np.concatenate([np.zeros_like(p.dhs[:-1]), p.dhs[-1:]])}[self.upstream]
        return replace(p, state0=state0, dstateT=dstateT, dhs=dhs)

    def notes(self) -> list[str]:
        """One line each: what compare supplied and what it could not check."""
        lines = [f"given as your code takes it: {s}_0 = 0 (your forward takes no {s}0)" for s in self.zero_state0]
        lines += [f"given as your code takes it: no gradient of {s}_T from after the last step "
                  f"(your backward takes no d{s}T)" for s in self.zero_final]
        lines += {"all": [], "last": ["given as your code takes it: dL/dh at the last step only"],
                  "sum": ["given as your code takes it: your backward's own loss, sum of every h_t"],
                  }[self.upstream]
        lines += ["given as your code takes it: batches of one sample"] if self.batch_one else []
        lines += [f"not checked: {row} ({why})" for row, why in self.unchecked]
        return list(self.blocks) + lines

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "Contract":
        return Contract(tuple(data["zero_state0"]), tuple(data["zero_final"]), data["upstream"],
                        bool(data["batch_one"]), tuple(tuple(u) for u in data["unchecked"]),
                        tuple(data["blocks"]))


def function(module, dotted: str, label: str):
    """module.a.b for "a.b", or a DeriveError naming what is missing."""
    found = module
    for part in dotted.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise DeriveError(f"{label}: has no function {dotted}() (named by its layout)")
    return found


class Adapted:
    """The user's functions in another layout, seen through our sequence contract."""

    def __init__(self, module, layout, cell, label, call):
        self.layout, self.call, self.label = layout, call, label
        self.states, self.output, self.input = tuple(cell.state_names), cell.output, cell.input_name
        check(layout, cell.name, cell.param_names)
        self.fwd = function(module, layout.forward.function, label)
        self.bwd = function(module, layout.backward.function, label)
        self.user_params = [u for u, _, _ in layout.entries()] or list(cell.param_names)
        self._check_names()
        self.contract = self._contract()

    # ----- names ------------------------------------------------------------------------
    def _known(self, forward: bool) -> tuple[set, set]:
        """(argument names, result names) the signature may use."""
        s, p = self.states, self.user_params
        common = {"params", "_", *p}
        if self.layout.step:
            if forward:
                return {self.input, *s} | common, {*s, self.output, "cache", "_"}
            return {*(f"d{v}" for v in (*s, self.output)), "cache"} | common, \
                {f"d{self.input}", *(f"d{v}" for v in s), *(f"d{n}" for n in p), "grads", "_"}
        if forward:
            return {f"{self.input}s", "state0", *(f"{v}0" for v in s)} | common, \
                {f"{self.output}s", "stateT", *(f"{v}T" for v in s), "cache", "_"}
        return {f"d{self.output}s", f"d{self.output}_last", "dstateT", "cache", *(f"d{v}T" for v in s)} | common, \
            {f"d{self.input}s", "dstate0", *(f"d{v}0" for v in s), *(f"d{n}" for n in p), "grads", "_"}

    def _check_names(self):
        for forward, sig in ((True, self.layout.forward), (False, self.layout.backward)):
            args, results = self._known(forward)
            for kind, names, known in (("argument", sig.args, args), ("result", sig.returns, results)):
                bad = [n for n in names if n not in known]
                if bad:
                    raise DeriveError(f"layout: {sig.function}() has the {kind} {bad[0]!r}, which is none of "
                                      f"{', '.join(sorted(known))}")

    def _contract(self) -> Contract:
        contract = self._parts()
        how = self.layout.weights.replace("_", " ")
        blocks = tuple(f"your {user} holds, for each gate: " + "+".join(f"{p}_<gate>" for p in spec.split("+"))
                       + f" ({how})" if "{gate}" in user else
                       f"your {user} holds, block by block: "
                       + " | ".join("+".join(ours(p, g) for p in spec.split("+"))
                                    for g in self.layout.gates or ("",))
                       + f" ({how})" for user, spec in self.layout.params)
        return replace(contract, blocks=blocks)

    def _parts(self) -> Contract:
        f, b, s, o = self.layout.forward, self.layout.backward, self.states, self.output
        grads = "grads" in b.returns or all(f"d{n}" in b.returns for n in self.user_params)
        if not grads:
            raise DeriveError(f"layout: {b.function}() must return grads or d<param> for every parameter")
        if self.layout.step:
            need = [f"d{v}" for v in s if f"d{v}" not in b.returns] + [v for v in s if v not in f.returns]
            if need:
                raise DeriveError(f"layout: step functions must return every state and its gradient; "
                                  f"{need[0]!r} is missing")
            missing = [] if f"d{self.input}" in b.returns else [
                (f"{self.input}s", f"your step backward returns no d{self.input}")]
            return Contract(unchecked=tuple(missing), batch_one=self.layout.batch in ("single", "vector"))
        dicts = ("state0" in f.args, "dstateT" in b.args, "stateT" in f.returns, "dstate0" in b.returns)
        unchecked = [] if f"{o}s" in f.returns else [(f"{o}s", f"your forward returns no {o}s")]
        unchecked += [(f"{v}_T", f"your forward returns no {v}T")
                      for v in s if not dicts[2] and f"{v}T" not in f.returns]
        unchecked += [] if f"d{self.input}s" in b.returns else [
            (f"{self.input}s", f"your backward returns no d{self.input}s")]
        unchecked += [(f"{v}_0", f"your backward returns no d{v}0")
                      for v in s if not dicts[3] and f"d{v}0" not in b.returns]
        upstream = ("all" if f"d{o}s" in b.args else "last" if f"d{o}_last" in b.args
                    else "sum" if self.layout.loss == "sum" else None)
        if upstream is None:
            raise DeriveError(f"layout: {b.function}() takes neither d{o}s nor d{o}_last; "
                              "if it builds in its loss sum(h), say loss = 'sum'")
        return Contract(tuple(v for v in s if not dicts[0] and f"{v}0" not in f.args),
                        tuple(v for v in s if not dicts[1] and f"d{v}T" not in b.args), upstream,
                        self.layout.batch in ("single", "vector"), tuple(unchecked))

    # ----- arrays -----------------------------------------------------------------------
    def to_user(self, a):
        """(B, n) -> the user's per-step layout."""
        batch = self.layout.batch
        return np.array(a if batch == "rows" else a[0] if batch == "vector" else a.T)

    def from_user(self, value, rows, what, fn):
        """The user's per-step array -> (B, n), its shape checked."""
        batch, value = self.layout.batch, np.asarray(value)
        want = {"rows": rows, "vector": rows[1:]}.get(batch, rows[::-1])
        if value.shape != want:
            raise DeriveError(f"{self.label}: {fn}() returned {what} of shape {value.shape}, expected {want}")
        return value if batch == "rows" else value[None, :] if batch == "vector" else value.T

    def seq_to_user(self, a):
        """(T, B, n) -> the user's sequence axes (per `sequence`, or per step columns)."""
        return np.ascontiguousarray(np.transpose(a, ["TBD".index(k) for k in self.layout.sequence]))

    def seq_from_user(self, value, shape, what, fn):
        order = ["TBD".index(k) for k in self.layout.sequence]
        want = tuple(shape[k] for k in order)
        value = np.asarray(value)
        if value.shape != want:
            raise DeriveError(f"{self.label}: {fn}() returned {what} of shape {value.shape}, expected {want}")
        return np.transpose(value, np.argsort(order))

    def invoke(self, sig, env, what):
        """Call the user's function by its signature; its results by name."""
        out = self.call(sig.function, self.fwd if what == "forward" else self.bwd, *(env[a] for a in sig.args))
        if len(sig.returns) == 1:
            return {sig.returns[0]: out}
        if not isinstance(out, (tuple, list)) or len(out) != len(sig.returns):
            got = f"{len(out)} values" if isinstance(out, (tuple, list)) else type(out).__name__
            raise DeriveError(f"{self.label}: {sig.function}() must return {len(sig.returns)} values "
                              f"({', '.join(sig.returns)}), returned {got}")
        return dict(zip(sig.returns, out))

    def user_grads(self, out, fn):
        grads = out["grads"] if "grads" in out else {n: out[f"d{n}"] for n in self.user_params}
        if not isinstance(grads, dict) or any(n not in grads for n in self.user_params):
            raise DeriveError(f"{self.label}: {fn}() returned grads without every one of "
                              f"{', '.join(self.user_params)}")
        return {n: np.array(grads[n]) for n in self.user_params}   # copies: code may reuse its buffers

    # ----- the contract -----------------------------------------------------------------
    def forward(self, params, xs, state0):
        user = pack(self.layout, params)
        shapes = {k: np.shape(v) for k, v in params.items()}
        run = self._step_forward if self.layout.step else self._seq_forward
        hs, stateT, caches = run(user, xs, state0)
        return hs, stateT, (shapes, user, caches)

    def backward(self, params, cache, dhs, dstateT):
        shapes, user, caches = cache
        run = self._step_backward if self.layout.step else self._seq_backward
        grads, dxs, dstate0 = run(user, caches, dhs, dstateT, shapes)
        try:
            return unpack(self.layout, grads, shapes), dxs, dstate0
        except DeriveError as err:
            raise DeriveError(f"{self.label}: {self.layout.backward.function}() {err}") from None

    def _step_forward(self, user, xs, state0):
        sig, state, hs, caches = self.layout.forward, dict(state0), [], []
        for x in xs:
            env = {self.input: self.to_user(x), **{s: self.to_user(state[s]) for s in self.states},
                   **user, "params": user, "_": None}
            out = self.invoke(sig, env, "forward")
            state = {s: self.from_user(out[s], state[s].shape, s, sig.function) for s in self.states}
            hs.append(state[self.output])
            caches.append(out.get("cache"))
        return np.stack(hs), state, (caches, xs.shape)

    def _step_backward(self, user, caches, dhs, dstateT, shapes):
        sig, carry, total, dxs = self.layout.backward, dict(dstateT), None, []
        caches, xshape = caches
        for t in reversed(range(len(caches))):
            d = dict(carry)
            d[self.output] = d[self.output] + dhs[t]
            env = {**{f"d{s}": self.to_user(d[s]) for s in self.states}, "cache": caches[t],
                   **user, "params": user, "_": None}
            out = self.invoke(sig, env, "backward")
            grads = self.user_grads(out, sig.function)
            total = grads if total is None else {k: total[k] + grads[k] for k in grads}
            carry = {s: self.from_user(out[f"d{s}"], d[s].shape, f"d{s}", sig.function) for s in self.states}
            if f"d{self.input}" in out:
                rows = (xshape[1], xshape[2])
                dxs.insert(0, self.from_user(out[f"d{self.input}"], rows, f"d{self.input}", sig.function))
        dxs = np.stack(dxs) if dxs else None
        return total, dxs, carry

    def _seq_forward(self, user, xs, state0):
        sig = self.layout.forward
        env = {f"{self.input}s": self.seq_to_user(xs), "state0": dict(state0), **user, "params": user,
               **{f"{s}0": self.to_user(v) for s, v in state0.items()}, "_": None}
        out = self.invoke(sig, env, "forward")
        T, B = xs.shape[:2]
        hs = out.get(f"{self.output}s")
        H = state0[self.output].shape[1]
        hs = None if hs is None else self.seq_from_user(hs, (T, B, H), f"{self.output}s", sig.function)
        stateT = out.get("stateT") or {s: self.from_user(out[f"{s}T"], state0[s].shape, f"{s}T", sig.function)
                                       for s in self.states if f"{s}T" in out}
        return hs, stateT, (out.get("cache"), xs.shape, {s: v.shape for s, v in state0.items()})

    def _seq_backward(self, user, caches, dhs, dstateT, shapes):
        sig, (cache, xshape, sshapes) = self.layout.backward, caches
        env = {f"d{self.output}s": self.seq_to_user(dhs), f"d{self.output}_last": self.to_user(dhs[-1]),
               "dstateT": dict(dstateT), "cache": cache, **user, "params": user, "_": None,
               **{f"d{s}T": self.to_user(v) for s, v in dstateT.items()}}
        out = self.invoke(sig, env, "backward")
        grads = self.user_grads(out, sig.function)
        dxs = out.get(f"d{self.input}s")
        dxs = None if dxs is None else self.seq_from_user(dxs, xshape, f"d{self.input}s", sig.function)
        dstate0 = out.get("dstate0") or {s: self.from_user(out[f"d{s}0"], sshapes[s], f"d{s}0", sig.function)
                                         for s in self.states if f"d{s}0" in out}
        return grads, dxs, dstate0

