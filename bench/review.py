"""The review queue: how a method's confidence serves a person who checks what the model is unsure of.

A camera-trap classifier is used with someone behind it: confident predictions are accepted, the rest are
reviewed. From each run's per-image log-probabilities (bench/metrics.py `image_outcomes`) this module gives
- calibration: expected calibration error (ECE, 15 equal-width bins of the top-label confidence, as MiSLAS
  and Guo et al. report it; computed by torchmetrics), class-wise ECE (Kull et al. 2019: the ECE of each
  class's probability against "the image is of that class", averaged over classes), negative
  log-likelihood and the multi-class Brier score (sum over classes of the squared error, averaged over
  images); the same after temperature scaling fitted on the run's validation images when it has them
  (Guo et al. 2017: one temperature minimising the validation NLL; never fitted on the test images);
- selective prediction: the risk-coverage curve (images accepted in order of confidence; risk = error
  rate of the accepted), its area (AURC, Geifman et al. 2019: the mean risk over every coverage k/N), and
  accuracy at 80 / 90 / 95% coverage;
- the camera-trap question: to catch `target` (default 95%) of the rare class's test images, a person
  reviews every image whose rare-class probability reaches the threshold that catches them. The share of
  the common class's test images above that threshold is the work it costs (the false alarms; it does not
  depend on how rare the rare class is), and `review_share` is the share of all images flagged when the
  classes come in the training set's proportions (the run's imbalance, e.g. 100 : 1). The rare class is
  the task's last (smallest) class. `confident_miss` is the share of rare images the model calls something
  else with a confidence above 0.9: the ones no reviewer would see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torchmetrics.functional.classification import multiclass_calibration_error

from .metrics import log_softmax

BINS = 15
COVERAGES = (0.8, 0.9, 0.95)
CONFIDENT = 0.9
REVIEW_TARGET = 0.95  # `bench report --review-target`


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Top-label ECE with `bins` equal-width bins (torchmetrics' multiclass CalibrationError, norm l1)."""
    return float(
        multiclass_calibration_error(
            torch.from_numpy(probs).double(), torch.from_numpy(labels), num_classes=probs.shape[1], n_bins=bins
        )
    )


def classwise_ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Kull et al.'s class-wise ECE: for each class k, the images binned by p_k (equal width), the weighted
    mean of |share of images of class k - mean p_k| over bins; averaged over classes."""
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for k in range(probs.shape[1]):
        p, hit = probs[:, k], (labels == k).astype(np.float64)
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
        err = 0.0
        for b in range(bins):
            m = which == b
            if m.any():
                err += m.sum() * abs(hit[m].mean() - p[m].mean())
        out.append(err / len(p))
    return float(np.mean(out))


def nll(logp: np.ndarray, labels: np.ndarray) -> float:
    return float(-logp[np.arange(len(labels)), labels].mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def fit_temperature(logp: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logp / T) on these (validation) images, searched
    over log T in [-3, 3] (T from 0.05 to 20) by scipy's bounded Brent method."""

    def loss(log_t):
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(axis=1))).mean())

    return float(math.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/N, risk of the k most confident images) for k = 1..N; ties in confidence are taken in
    one block (every tied image accepted together), so the curve does not depend on the images' order."""
    conf, wrong = probs.max(axis=1), (probs.argmax(axis=1) != labels).astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    conf, wrong = conf[order], wrong[order]
    cum = np.cumsum(wrong)
    # at a tie, every position of the block gets the block's end: its images come in together
    ends = np.r_[np.flatnonzero(np.diff(conf) != 0), len(conf) - 1]
    block_end = np.repeat(ends, np.diff(np.r_[-1, ends]))
    k = np.arange(1, len(conf) + 1)
    return k / len(conf), cum[block_end] / (block_end + 1)


def aurc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean risk over the coverages 1/N .. N/N."""
    return float(risk_coverage(probs, labels)[1].mean())


def accuracy_at(probs: np.ndarray, labels: np.ndarray, coverage: float) -> float:
    """Accuracy of the ceil(coverage * N) most confident images (ties as in `risk_coverage`)."""
    cov, risk = risk_coverage(probs, labels)
    k = max(1, math.ceil(coverage * len(labels) - 1e-9))
    return float(1 - risk[k - 1])


def rare_review(probs: np.ndarray, labels: np.ndarray, prior: np.ndarray, target: float = REVIEW_TARGET) -> dict:
    """The camera-trap question for the rare (last) class (module docstring): the threshold on the rare
    class's probability that catches `target` of its test images, the share of the other classes' images
    at or above it (`common_share`), the share of all images flagged at the class proportions `prior`
    (`review_share`), and the confident misses."""
    rare = probs.shape[1] - 1
    p_rare, is_rare = probs[:, rare], labels == rare
    n_rare = int(is_rare.sum())
    if n_rare == 0 or n_rare == len(labels):
        return {}
    need = math.ceil(target * n_rare - 1e-9)  # rare images the reviewer must see
    threshold = float(np.sort(p_rare[is_rare])[::-1][need - 1])
    flagged = p_rare >= threshold
    per_class = np.array([flagged[labels == k].mean() if (labels == k).any() else 0.0 for k in range(probs.shape[1])])
    prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
    common = ~is_rare
    return {
        "threshold": threshold,
        "rare_caught": float(flagged[is_rare].mean()),
        "common_share": float(flagged[common].mean()),
        "review_share": float((prior * per_class).sum()),
        "confident_miss": float(((probs.argmax(axis=1) != rare) & (probs.max(axis=1) > CONFIDENT))[is_rare].mean()),
    }


@dataclass(frozen=True)
class Review:
    """A run's review-queue numbers (module docstring); `*_ts` after temperature scaling (None without
    validation images)."""

    ece: float
    classwise_ece: float
    nll: float
    brier: float
    aurc: float
    acc_at: dict[float, float]
    temperature: float | None
    ece_ts: float | None
    nll_ts: float | None
    rare: dict

    @property
    def common_share(self) -> float:
        return self.rare.get("common_share", float("nan"))

    @property
    def review_share(self) -> float:
        return self.rare.get("review_share", float("nan"))

    @property
    def confident_miss(self) -> float:
        return self.rare.get("confident_miss", float("nan"))


def review(labels, logp, train_counts, val=None, target: float = REVIEW_TARGET) -> Review:
    """Every number of the module docstring for one run: `labels`, `logp` of its test images, the training
    counts per class (the deployment proportions of `review_share`), and (labels, logp) of its validation
    images, if any, to fit the temperature on."""
    logp = log_softmax(logp)  # the record's float16 rows, normalised again
    probs = np.exp(logp)
    temperature = ece_ts = nll_ts = None
    if val is not None and len(val[0]) >= 2:
        temperature = fit_temperature(val[1], val[0])
        scaled = log_softmax(logp / temperature)
        ece_ts, nll_ts = ece(np.exp(scaled), labels), nll(scaled, labels)
    return Review(
        ece=ece(probs, labels),
        classwise_ece=classwise_ece(probs, labels),
        nll=nll(logp, labels),
        brier=brier(probs, labels),
        aurc=aurc(probs, labels),
        acc_at={c: accuracy_at(probs, labels, c) for c in COVERAGES},
        temperature=temperature,
        ece_ts=ece_ts,
        nll_ts=nll_ts,
        rare=rare_review(probs, labels, train_counts, target),
    )
