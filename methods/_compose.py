"""Composition: `os+fsc` parsed into one Composite, with at most one method per role and the rules that
refuse a composition correcting for the class prior twice (see methods/base.py)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from torch import nn

from ._registry import REGISTRY, _instantiate, code_digest, source_digest
from ._roles import (
    _INSTANCE,
    ROLES,
    Auxiliary,
    Criterion,
    Method,
    MethodError,
    Posthoc,
    Reweighting,
    Sampler,
    Stage,
    Stages,
    TrainContext,
    Transform,
)

# ---- composition ---------------------------------------------------------------------------------

DEFAULT_CRITERION = "ce"


@dataclass
class Composite:
    """A parsed composition such as `os+fsc`: at most one method per role (auxiliaries: any number)."""

    sampler: Sampler | None
    criterion: Criterion
    auxiliaries: list[Auxiliary]
    transform: Transform | None = None
    reweighting: Reweighting | None = None
    stager: Stages | None = None
    posthoc: Posthoc | None = None

    @property
    def parts(self) -> list[Method]:
        own = [self.sampler, self.transform, self.criterion, self.reweighting, *self.auxiliaries]
        return [m for m in [*own, self.stager, self.posthoc] if m is not None]

    @property
    def name(self) -> str:
        return canonical_name([m.name for m in self.parts])

    def hparams(self) -> dict:
        return {m.name: m.hparams() for m in self.parts if m.hparams()}

    def key_hparams(self) -> dict:
        """The hyper-parameters a run key holds: `hparams()` less those at their method's `legacy` value. A
        parameter added to a method after records existed, set to the value those records were computed
        with, asks for exactly their arithmetic, so the run is theirs (same key); bench/compat.py's
        `record_hparams` reads the value back when the run is built or reported."""
        return {
            m.name: {k: v for k, v in m.hparams().items() if k not in m.legacy or m.legacy[k] != v}
            for m in self.parts
            if m.hparams()
        }

    def legacy(self) -> dict[str, dict]:
        """{part: its `legacy` map}: the values of parameters older records (and keys) leave out."""
        return {m.name: dict(m.legacy) for m in self.parts if m.legacy}

    def revisions(self) -> dict[str, int] | None:
        """{part: revision} for the parts above revision 0; None when there are none (the run key then
        stays what it was before revisions existed)."""
        revs = {m.name: m.method_revision() for m in self.parts if m.method_revision() > 0}
        return revs or None

    def sources(self) -> dict[str, str]:
        """{part: digest of the source file that defines it}: a record says which file made it."""
        return {m.name: source_digest(type(m)) for m in self.parts}

    def code(self) -> dict[str, str]:
        """{part: digest of its file's code, docstrings, comments and layout left out}: what `bench run`
        compares, so that an edit of a method's documentation is not taken for a change of its arithmetic."""
        return {m.name: code_digest(type(m)) for m in self.parts}

    def main_stage(self, name: str = "train", share: float = 1.0) -> Stage:
        """The stage the composition trains in when no stages method splits the budget."""
        return Stage(
            name=name,
            share=share,
            sampler=self.sampler,
            criterion=self.criterion,
            reweighting=self.reweighting,
            transform=self.transform,
            auxiliaries=list(self.auxiliaries),
        )

    def stages(self) -> list[Stage]:
        stages = self.stager.stages(self) if self.stager else [self.main_stage()]
        total = sum(s.share for s in stages)
        if not stages or abs(total - 1) > 1e-9 or any(s.share <= 0 for s in stages):
            raise MethodError(f"the stages of {self.name} must have positive shares summing to 1, got {total}")
        return stages

    def batch_prior(self, counts: list[int]) -> list[float]:
        return (self.sampler or _INSTANCE).batch_prior(counts)

    def setup(self, ctx: TrainContext) -> None:
        for m in self.parts:
            m.setup(ctx)

    def adapt_model(self, model: nn.Module) -> None:
        for m in self.parts:
            m.adapt_model(model)


def canonical_name(names: list[str]) -> str:
    """Order-free name: by role, then by name; the default criterion is left out unless it is
    alone, so `fsc`, `ce+fsc` and `fsc+ce` are one method."""
    order = {r: i for i, r in enumerate(ROLES)}
    names = sorted(set(names), key=lambda n: (order[REGISTRY[n].role], n))
    if len(names) > 1 and DEFAULT_CRITERION in names:
        names.remove(DEFAULT_CRITERION)
    return "+".join(names)


def _check_composition(spec: str, parts: list[Method]) -> None:
    """Refuse compositions that correct for the class imbalance twice or change the classifier twice."""
    rebalancing = [m.name for m in parts if isinstance(m, Sampler) and m.rebalances]
    prior = [m.name for m in parts if m.corrects_prior]
    if rebalancing and prior:
        raise MethodError(
            f"{spec!r} corrects for the class prior twice: {rebalancing[0]} re-balances the batches and "
            f"{prior[0]} corrects the loss or logits for the training prior; use one of them"
        )
    if len(prior) > 1:
        raise MethodError(f"{spec!r} corrects for the class prior twice ({' and '.join(prior)}); use one of them")
    classifier_prior = [m.name for m in parts if m.rebalances_classifier]
    if classifier_prior and (prior or len(classifier_prior) > 1):
        other = (prior + classifier_prior[1:])[0]
        raise MethodError(
            f"{spec!r} corrects for the class prior twice: {classifier_prior[0]} re-balances the classifier and "
            f"{other} also corrects for the prior; use one of them"
        )
    classifier = [m.name for m in parts if m.changes_classifier]
    if len(classifier) > 1:
        raise MethodError(f"{spec!r} changes the classifier twice ({' and '.join(classifier)}); use one of them")


def parse_method(spec: str, overrides: dict[str, dict[str, str]] | None = None) -> Composite:
    """Parse `os+fsc` into a Composite, applying `{method: {param: raw_value}}` overrides."""
    overrides = overrides or {}
    names = [n.strip() for n in spec.split("+") if n.strip()]
    if not names:
        raise MethodError(f"empty method {spec!r}; registered: {', '.join(sorted(REGISTRY))}")
    for n in names:
        if n not in REGISTRY:
            close = difflib.get_close_matches(n, REGISTRY, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise MethodError(f"unknown method {n!r}; {hint}registered: {', '.join(sorted(REGISTRY))}")
    if len(set(names)) != len(names):
        raise MethodError(f"{spec!r} names a method twice")
    by_role: dict[str, list[str]] = {r: sorted(n for n in names if REGISTRY[n].role == r) for r in ROLES}
    for role, members in by_role.items():
        if role != "auxiliary" and len(members) > 1:
            raise MethodError(f"{spec!r} combines two methods of role {role} ({' and '.join(members)}); use one")
    make = lambda n: _instantiate(n, overrides.get(n, {}))
    one = lambda role: make(by_role[role][0]) if by_role[role] else None
    comp = Composite(
        sampler=one("sampler"),
        criterion=make(by_role["criterion"][0] if by_role["criterion"] else DEFAULT_CRITERION),
        auxiliaries=[make(n) for n in by_role["auxiliary"]],
        transform=one("transform"),
        reweighting=one("reweighting"),
        stager=one("stages"),
        posthoc=one("posthoc"),
    )
    _check_composition(spec, comp.parts)
    return comp
