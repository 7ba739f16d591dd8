"""Record compatibility, in one place: how records made by older code are read, so that records (the
suite's capital) stay usable without ever being rewritten and are never taken for what they are not.

1. Run keys (`LATE_DEFAULTS`, defined in bench/spec.py beside the key it shapes): a field added to RunSpec
   after records existed is left out of the key while it has the value those older records were computed
   with, so their keys stay valid and a grid resumes on them. A field whose new value changes the
   arithmetic gets a new key by construction.
2. Numerics (`record_numerics`): records made before the key named the arithmetic (device, precision,
   CPU threads, torch release, CPU model) get it rebuilt from the environment they recorded (without the
   CPU model: those boards stay apart from the newer ones).
3. Hyper-parameters (`record_hparams`, from each method's `legacy` map): a hyper-parameter added to a
   method after records existed is read with the value those records were computed with, so an old
   record is never shown as the new default's.
4. Arithmetic revisions (`Method.revision`, in the key once above 0) and the code digests a record keeps
   (`method_code`; `scripts/add_method_code.py` gave older records theirs from the git version their
   `method_source` names): a changed method never reuses old records, and an edit of its documentation is
   not taken for a change of its numbers. `SUITE_VERSION` (bench/__init__.py) separates incompatible
   generations of records entirely: boards never mix versions.
"""

from __future__ import annotations

from .spec import LATE_DEFAULTS, numerics

__all__ = ["LATE_DEFAULTS", "record_hparams", "record_numerics"]  # LATE_DEFAULTS: defined with the key (spec.py)


def record_numerics(rec: dict) -> str:
    """A record's numerics: its spec's, or for records made before the field existed, rebuilt from
    the environment it recorded (device kind, thread count, torch version)."""
    spec, env = rec.get("spec", {}), rec.get("env", {})
    if spec.get("numerics"):
        return spec["numerics"]
    return numerics(
        env.get("device_type", "cpu"), spec.get("precision", "auto"), env.get("threads"), env.get("torch"), chip=""
    )


def record_hparams(hparams: dict, legacy: dict[str, dict]) -> dict:
    """A record's {method: {param: value}} with each method's `legacy` values for the parameters the record
    predates (`legacy`: {method: Method.legacy})."""
    return {m: {**{k: v for k, v in legacy.get(m, {}).items() if k not in hp}, **hp} for m, hp in hparams.items()}
