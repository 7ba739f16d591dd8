"""`bench advise`: which method for MY data? A race of a few contenders, decided on validation images carved
from the user's training photos, and the chosen method trained on all of them and saved.

The procedure, in the suite's own terms:
1. Contenders: `--methods`, else the confirmatory family of the regime (grids/round4_confirm_scratch.toml
   from scratch, grids/round4_confirm_transfer.toml with --pretrained): `os` (the reference), `ce`, the
   paper's claims and the methods the committed standard and transfer boards put forward (the rule that
   picked them is in those files).
2. Validation: `--val-per-class` images of each class are held out of the training photos (a quarter of
   the rare class's, at most 20, by default; the same images for every seed); the test split is never
   used to choose. Every run reports its validation balanced accuracy and per-image outcomes.
3. The race: every contender trains `--seeds` seeds (3); then, while more than one method may be the
   best (bench/stats.py: multiple comparisons with the best, Hsu's Dunnett bound) and the time budget
   (`--hours`, projected from the runs so far) allows, the methods that may be the best and the
   reference get two seeds more, up to `--max-seeds`. Verdicts against the reference are the suite's
   paired test with the validation images' shared error (`image_shared_var`), Holm-corrected over the
   contenders (family-wise: a recommendation is a claim).
4. The answer: one method that alone may be the best, or, when several cannot be told apart, the
   cheapest of them (the least training time a run): "choose by cost". Its test-split numbers (rare
   images caught, the review share at the suite's 95% recall target) are printed beside the
   reference's, for the user to see, not to choose.
5. The model: the answer trained once more on all training photos (no validation hold-out, seed 0) and
   saved (bench/saved_model.py) with every test photo's prediction and probabilities as CSV.

Everything is a normal run with a record (OUT/runs), so an interrupted advice resumes where it stopped.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BenchError
from .metrics import decode_labels, outcome_arrays
from .review import REVIEW_TARGET, review
from .stats import Decision, decide, image_shared_var

REFERENCE = "os"
FAMILIES = {False: "round4_confirm_scratch.toml", True: "round4_confirm_transfer.toml"}  # by --pretrained
MAX_VAL = 20
MORE = 2  # seeds added a round


def contenders(pretrained: bool) -> tuple[list[str], str]:
    """The default contenders and why: the reference, ce, and the methods of the regime's confirmatory family."""
    from .gridfile import read_family

    path = Path(__file__).resolve().parents[1] / "grids" / FAMILIES[pretrained]
    family = read_family(str(path)) if path.is_file() else None
    if family is None:
        raise BenchError(f"the contenders' grid file {path} is missing; pass --methods (e.g. os,ce,la,os+wb)")
    named = [m for pair in family["contrasts"] for m in pair]
    methods = list(dict.fromkeys([REFERENCE, "ce", *named]))
    why = (
        f"the confirmatory family of grids/{path.name} ({'transfer' if pretrained else 'from-scratch'} regime): "
        "the references os and ce, the paper's claims (os+fsc, fsc) and the contenders the suite's committed "
        "boards put forward"
    )
    return methods, why


def default_validation(data, classes: list[str]) -> int:
    """A quarter of the rarer class's training photos (at least 1, at most MAX_VAL) per class."""
    pools = [int((data.train_y == data.classes.index(c)).sum()) for c in classes]
    rare = min(pools)
    if rare < 3:
        raise BenchError(
            f"class {classes[int(np.argmin(pools))]!r} has {rare} training photo(s); advise needs at least 3 (one "
            "to validate on, two to train on): add photos of it"
        )
    return max(1, min(MAX_VAL, rare // 4))


@dataclass
class Race:
    """The records of the race so far, by method and seed."""

    records: dict[str, dict[int, dict]] = field(default_factory=dict)

    def add(self, recs: list[dict]) -> None:
        for r in recs:
            if r.get("status") == "ok":
                self.records.setdefault(r["spec"]["method"], {})[r["spec"]["seed"]] = r

    def scores(self, where: str = "val") -> dict[str, dict[int, float]]:
        get = (lambda m: m["val"]["balanced_acc"]) if where == "val" else (lambda m: m["balanced_acc"])
        return {m: {s: float(get(r["metrics"])) for s, r in by.items()} for m, by in self.records.items()}

    def shared_var(self, a: str, b: str, outcome: str = "val_outcome") -> float:
        """The image term of a - b over the seeds both ran (0 where it cannot be estimated)."""
        seeds = sorted(set(self.records[a]) & set(self.records[b]))

        def of(m):
            out = []
            for s in seeds:
                o = self.records[m][s]["metrics"].get(outcome)
                if o is None:
                    raise ValueError("no per-image outcomes")
                out.append((decode_labels(o["labels"]), decode_labels(o["predictions"])))
            return out

        try:
            return image_shared_var(of(a), of(b))
        except ValueError:
            return 0.0

    def decide(self, reference: str) -> Decision | None:
        return decide(self.scores("val"), reference, test_var=self.shared_var, correction="holm")

    def run_seconds(self) -> float:
        walls = [r.get("wall_s") or 0.0 for by in self.records.values() for r in by.values()]
        return float(np.median(walls)) if walls else 0.0

    def cost(self, m: str) -> float:
        return float(np.median([r.get("wall_s") or 0.0 for r in self.records[m].values()]))


SAME_COST = 1.1  # runs within 10% of the cheapest one's time count as the same cost


def choose(d: Decision, race: Race) -> tuple[str, str]:
    """(the method to use, why in words): the one method that may be the best; else, among those that may be,
    the cheapest (runs within 10% of each other cost the same), preferring the reference, then the higher
    mean validation score."""
    best = d.may_be_best
    if len(best) == 1:
        return best[0], (
            f"it alone may be the best on your validation photos over {len(race.records[best[0]])} seeds (every "
            "other contender is beaten by it or another at 95% confidence, Dunnett-bounded)"
        )
    n = min(len(race.records[m]) for m in best)
    low = min(race.cost(m) for m in best)
    cheap = [m for m in best if race.cost(m) <= SAME_COST * low]
    val = race.scores("val")
    pick = d.reference if d.reference in cheap else max(cheap, key=lambda m: (np.mean(list(val[m].values())), m))
    how = (
        f"{pick} is the reference every other contender was compared with"
        if pick == d.reference
        else f"{pick} has the highest mean validation score of them"
    )
    return pick, (
        f"{len(best)} methods cannot be told apart on your validation photos with {n} or more seeds each "
        f"({', '.join(best)}); choose by cost: {', '.join(cheap)} train in about the same time ({low:.0f} s a run), "
        f"and {how}"
    )


def on_test_split(race: Race, m: str, target: float = REVIEW_TARGET) -> dict:
    """What `m` does on the test split, averaged over its seeds: rare photos caught, their count, and the
    share of all photos a reviewer checks to catch `target` of the rare ones."""
    caught, share, n_rare = [], [], 0
    for r in race.records[m].values():
        o = r["metrics"]["test_outcome"]
        labels, logp, _ = outcome_arrays(o)
        rare = len(r["counts"]["train"]) - 1
        n_rare = int((labels == rare).sum())
        caught.append(float((decode_labels(o["predictions"])[labels == rare] == rare).sum()))
        if logp is not None:
            share.append(review(labels, logp, r["counts"]["train"], target=target).review_share)
    return {
        "caught": float(np.mean(caught)),
        "rare": n_rare,
        "review_share": float(np.nanmean(share)) if share else None,
        "seeds": len(caught),
    }


def advice_text(d: Decision, race: Race, choice: str, why: str, reference: str, classes: list[str]) -> str:
    """The answer in words: the choice and why, its paired difference from the reference on validation, and
    what it and the reference do on the test split."""
    t = on_test_split(race, choice)
    lines = [f"use {choice}: {why}."]
    if choice != reference and choice in d.vs_reference:
        pd = d.vs_reference[choice]
        lines.append(
            f"{choice} vs {reference} on validation (balanced accuracy, paired over {pd.n} seeds): {pd.mean:+.3f} "
            f"[{pd.lo:+.3f}, {pd.hi:+.3f}], Holm-adjusted p = {d.p_adj[choice]:.2g} over {len(d.p_adj)} comparisons: "
            f"{d.verdict[choice]}"
        )
    undetectable = [(m, d.mde.get(m)) for m in d.may_be_best if m != reference and d.mde.get(m) is not None]
    if len(d.may_be_best) > 1 and undetectable:  # "cannot be told apart" says how large a difference could hide
        lines.append(
            f"at these seeds a difference from {reference} smaller than this could go unseen (80% power, at the "
            f"first Holm level, alpha / {len(d.p_adj)}): "
            + ", ".join(f"{m} {v:.3f}" if v != float("inf") else f"{m} any" for m, v in undetectable)
        )
    rare = classes[-1]
    ref = on_test_split(race, reference) if reference in race.records else None
    share = lambda w: f"{w['review_share']:.1%}" if w and w["review_share"] is not None else "n/a"  # noqa: E731
    lines.append(
        f"on your test split (never used to choose): {choice} catches {t['caught']:.1f} of your {t['rare']} {rare} "
        f"test photos (mean over {t['seeds']} seeds"
        + (f"; {reference}: {ref['caught']:.1f}" if ref and choice != reference else "")
        + f"); to catch {REVIEW_TARGET:.0%} of them a reviewer checks {share(t)} of the photos"
        + (f" ({reference}: {share(ref)})" if ref and choice != reference else "")
    )
    return "\n".join(lines)


def contenders_table(d: Decision, race: Race, reference: str) -> str:
    from tabulate import tabulate

    val, test = race.scores("val"), race.scores("test")
    rows = []
    for m in sorted(race.records, key=lambda m: -np.mean(list(val[m].values()))):
        v = np.array(list(val[m].values()))
        pd = d.vs_reference.get(m)
        rows.append(
            [
                m,
                len(v),
                f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}",
                pd.fmt() if pd else ("reference" if m == reference else "-"),
                d.verdict.get(m, "reference" if m == reference else "-"),
                "yes" if m in d.may_be_best else "no",
                f"{np.mean(list(test[m].values())):.3f}",
                f"{race.cost(m):.0f}",
            ]
        )
    head = [
        "method",
        "seeds",
        "val balanced acc",
        f"vs {reference} (val)",
        "verdict (Holm)",
        "may be best",
        "test balanced acc",
        "s / run",
    ]
    return tabulate(rows, head, tablefmt="github")


def write_test_predictions(path: Path, saved: Path, data, classes: list[str], device) -> int:
    """Every test photo of the task's classes through the saved model (not only the balanced subset the
    record scores): a CSV for the user's review. The number of photos."""
    import torch

    from .saved_model import classify, load, write_predictions

    model, config, posthoc = load(saved, device)
    ids = [data.classes.index(c) for c in classes]
    keep = np.flatnonzero(np.isin(data.test_y.numpy(), ids))
    logits = classify(model, config, posthoc, data.test_x[torch.from_numpy(keep)], device)
    names = [data.test_files[i] for i in keep] if data.test_files else [f"test image {i}" for i in keep]
    labels = np.array([ids.index(int(data.test_y[i])) for i in keep])
    write_predictions(path, names, logits, classes, labels)
    return len(keep)


def projected(race: Race, runs: int) -> float:
    """Seconds for `runs` more runs, from the median run so far."""
    return race.run_seconds() * runs


def say(msg: str) -> None:
    print(f"advise: {msg}", flush=True)


def budget_left(t0: float, hours: float) -> float:
    return hours * 3600 - (time.monotonic() - t0)


def copy_model(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst_dir / "model.pt")
    shutil.copyfile(src.with_suffix(".json"), dst_dir / "model.json")
    return dst_dir / "model.pt"


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def run_flags(a) -> list[str]:
    """The `bench run` flags every run of the advice shares (what to train on and how)."""
    flags = [
        "--dataset",
        a.dataset,
        "--task",
        a.task,
        "--preset",
        a.preset,
        "--model",
        a.model,
        "--out",
        str(Path(a.out) / "runs"),
        "--device",
        a.device,
        "--executor",
        a.executor,
    ]
    for flag, value in (
        ("--classes", a.classes),
        ("--data-root", a.data_root),
        ("--image-size", a.image_size),
        ("--split-by", a.split_by),
        ("--ratios", a.ratios),
        ("--pretrained", a.weights),
        ("--tune", a.tune),
        ("--augment", a.augment),
        ("--steps", a.steps),
        ("--width", a.width),
        ("--threads", a.threads),
    ):
        if value is not None:
            flags += [flag, str(value)]
    for item in a.set:
        flags += ["--set", item]
    flags += ["--skip-unreadable"] * a.skip_unreadable + ["--plain"] * a.plain + ["--yes"]
    return flags


def advise(a, run) -> int:
    """`bench advise` (module docstring): the race, the answer, the saved model. The exit status. `run(argv,
    command_line, cache)` is `bench run` (the CLI's, handed in so that this module does not import the CLI):
    (its exit status, the runs it planned)."""
    from datasets.tasks import resolve_classes

    from .runner import DataCache
    from .settings import csv_list
    from .spec import PRESETS
    from .train import pick_device

    if a.ratios is not None and len(csv_list(a.ratios)) != 1:
        raise BenchError("advise answers for one ratio: pass one --ratios value (or none: the data's own)")
    if a.max_seeds < a.seeds or a.seeds < 2:
        raise BenchError(f"--seeds {a.seeds} / --max-seeds {a.max_seeds}: need 2 <= --seeds <= --max-seeds")
    if a.hours <= 0:
        raise BenchError(f"--hours must be positive, got {a.hours}")
    if a.ratios is None and a.dataset != "folder":
        a.ratios = "0.01"  # a built-in task: the suite's camera-trap cell
    pretrained = bool(a.weights) or bool(PRESETS[a.preset].get("start"))  # --preset transfer: the shipped start
    methods, why = (csv_list(a.methods), "as given by --methods") if a.methods else contenders(pretrained)
    reference = REFERENCE if REFERENCE in methods else methods[0]
    cache = DataCache(a.data_root, a.image_size, a.skip_unreadable, a.split_by)
    src, data = cache.get(a.dataset)
    classes = resolve_classes(a.dataset, data, src.pairs, a.task, csv_list(a.classes) if a.classes else None)
    val = a.val_per_class if a.val_per_class is not None else default_validation(data, classes)
    base = run_flags(a)
    say(f"contenders: {', '.join(methods)} ({why}); reference {reference}")
    say(
        f"validation: {val} training photo(s) per class held out to choose on (the test split is never used to "
        f"choose); seeds {a.seeds} each, then up to {a.max_seeds} while more than one may be the best; budget "
        f"{a.hours:g} h"
    )
    if val < 5:
        warn(
            f"{val} validation photo(s) per class: the race can tell only large differences apart; more rare "
            "photos (or a larger --val-per-class) make the answer sharper"
        )

    def train(names: list[str], seeds: int, extra: list[str]) -> list[dict]:
        argv = ["run", *base, "--methods", ",".join(names), "--seeds", str(seeds), *extra]
        code, specs = run(argv, f"{a.command_line}  # {' '.join(argv)}", cache)
        if code in (130, 143):
            raise KeyboardInterrupt
        from . import store

        keys = {s.key for s in specs}
        return [r for _, r in store.iter_records(Path(a.out) / "runs") if r and r.get("key") in keys]

    t0, race, seeds = time.monotonic(), Race(), a.seeds
    racing = list(methods)
    hold = ["--val-per-class", str(val)]
    while True:
        race.add(train(racing, seeds, hold))
        missing = [m for m in methods if len(race.records.get(m, {})) < 2]
        if missing:
            raise BenchError(
                f"{', '.join(missing)} finished fewer than 2 seeds (their records in {a.out}/runs say "
                "why); drop them with --methods or fix the cause, then run the same command again"
            )
        d = race.decide(reference)
        best = d.may_be_best
        say(f"after {seeds} seeds: may be the best: {', '.join(best)}")
        if len(best) <= 1 or seeds >= a.max_seeds:
            break
        racing = sorted(set(best) | {reference})
        nxt = min(a.max_seeds, seeds + MORE)
        need = projected(race, len(racing) * (nxt - seeds))
        if need > budget_left(t0, a.hours):
            say(
                f"stopping at {seeds} seeds: {len(racing)} methods x {nxt - seeds} more seeds would take about "
                f"{need / 60:.0f} min, beyond the --hours {a.hours:g} budget"
            )
            break
        seeds = nxt
    choice, reason = choose(d, race)
    print()
    print(contenders_table(d, race, reference))
    print()
    text = advice_text(d, race, choice, reason, reference, classes)
    print(text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = [
        f"# Advice for {a.dataset} {','.join(classes)}",
        "",
        f"Command: `{a.command_line}`",
        "",
        text.replace("\n", "\n\n"),
        "",
        contenders_table(d, race, reference),
        "",
    ]
    if a.save_model:
        say(f"training {choice} on all training photos (no validation hold-out, seed 0) to keep it")
        recs = train([choice], 1, ["--val-per-class", "0", "--save-model"])
        saved = next((Path(r["saved_model"]) for r in recs if r.get("saved_model")), None)
        if saved is None or not saved.is_file():  # a finished run from before: train it again to keep its model
            recs = train([choice], 1, ["--val-per-class", "0", "--save-model", "--force"])
            saved = next((Path(r["saved_model"]) for r in recs if r.get("saved_model")), None)
        if saved is None:
            raise BenchError(f"the final {choice} run failed; its record in {out}/runs says why")
        model = copy_model(saved, out)
        n = write_test_predictions(
            out / "test_predictions.csv", model, cache.get(a.dataset)[1], classes, pick_device(a.device)
        )
        kept = (
            f"the model: {model} (+ model.json; `python -m bench predict {model} PHOTOS` classifies a "
            f"folder); every test photo's prediction and probabilities ({n}): {out / 'test_predictions.csv'}"
        )
        say(kept)
        report += [kept, ""]
    (out / "advice.md").write_text("\n".join(report))
    say(f"written: {out / 'advice.md'}")
    return 0
