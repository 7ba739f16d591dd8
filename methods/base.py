"""The Method interface: its roles, its hooks, the registry and the `a+b` composition.

A method plays exactly one role (at most one method per role in a composition, except auxiliary):
- sampler: which training indices an epoch visits (default: every index once, shuffled); it may
  also resample the training data once (SMOTE) and states the class prior its batches have;
- transform: changes a batch between augmentation and the forward pass and may return soft
  targets (mixup, remix);
- criterion: the classification loss on logits (default: cross-entropy); it gives the loss of every
  sample for every candidate label, so hard and soft targets, class weights and the reduction are
  handled once, here;
- reweighting: class weights for the criterion that may change during training (deferred
  re-weighting);
- auxiliary: a term added to the loss; it may read pooled intermediate features and declares
  which layers it needs (`taps`), so the harness computes only those;
- stages: splits the step budget into stages, each with its own sampler, criterion, trainable
  parameters and re-initialised layers (classifier re-training, two-stage contrastive learning);
- posthoc: transforms logits or classifier weights at evaluation (tau-normalisation); a value it
  has to choose is chosen on the validation split, never on the test set.

Every method may also use the hooks `setup(ctx)` (once per run: class counts, budget, device),
`adapt_model(model)` (once, before training: e.g. a cosine classifier), `on_step(state)` (before
every optimiser step: schedules) and `parameters()` (tensors it trains with the model).
Hyper-parameters are dataclass fields with defaults; `hp()` declares a valid range, so a bad
`--set` value is refused before any run starts.

Methods never import the harness: the harness hands them a `TrainContext` and a `TrainState`.

The interface is kept in three files by job, and every public name is re-exported here (a method file
imports from `methods` or `methods.base`): `_roles.py` (the role bases, Stage, TrainContext/TrainState,
`hp`), `_registry.py` (the registry, typed `--set` parsing, the source digests a record keeps) and
`_compose.py` (Composite, `parse_method` and the composition rules).
"""

from __future__ import annotations

# The interface lives in three files by job; every name a method file imports from here stays here.
from ._compose import DEFAULT_CRITERION, Composite, canonical_name, parse_method
from ._registry import (
    REGISTRY,
    code_digest,
    code_digest_of_text,
    register,
    source_digest,
    unregister,
)
from ._roles import (
    REDUCTIONS,
    ROLE_BASES,
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
    TrainState,
    Transform,
    epoch_indices,
    full_precision,
    hp,
    reduce_class_losses,
)

__all__ = [
    "DEFAULT_CRITERION",
    "REDUCTIONS",
    "REGISTRY",
    "ROLES",
    "ROLE_BASES",
    "Auxiliary",
    "Composite",
    "Criterion",
    "Method",
    "MethodError",
    "Posthoc",
    "Reweighting",
    "Sampler",
    "Stage",
    "Stages",
    "TrainContext",
    "TrainState",
    "Transform",
    "canonical_name",
    "code_digest",
    "code_digest_of_text",
    "epoch_indices",
    "full_precision",
    "hp",
    "parse_method",
    "reduce_class_losses",
    "register",
    "source_digest",
    "unregister",
]
