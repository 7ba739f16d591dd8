"""Evaluation metrics of a run, computed with scikit-learn from test labels and logits."""

from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np
from scipy.special import softmax
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[float]:
    cm = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    support = cm.sum(axis=1)
    return [float(cm[i, i] / support[i]) if support[i] else float("nan") for i in range(n_classes)]


def roc_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary: AUC of the class-1 score; more classes: macro one-vs-rest."""
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=list(range(probs.shape[1]))))


def logit_adjusted_predictions(logits: np.ndarray, train_counts: list[int], tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al., ICLR 2021): argmax of logits - tau * log(prior)."""
    prior = np.asarray(train_counts, dtype=np.float64)
    prior = prior / prior.sum()
    return np.argmax(logits - tau * np.log(prior), axis=1)


def separation(features: np.ndarray, labels: np.ndarray) -> dict:
    """How far apart the classes are in a feature space (the paper's claimed mechanism): the
    silhouette score with cosine distance, and the mean cosine similarity of pairs of images from the
    same class and from different classes.

    Computed from per-class sums of the L2-normalised features, in O(n C D) rather than the O(n^2 D)
    of a pairwise matrix (10000 test images of a long-tailed Fashion-MNIST task took seconds per
    layer that way): the mean cosine of image i to the images of class c is z_i . S_c / n_c, so every
    quantity is exact; `tests/test_report.py` checks it against scikit-learn's silhouette_score."""
    z = features.astype(np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    classes, y = np.unique(labels, return_inverse=True)
    n_c = np.bincount(y).astype(np.float64)
    sums = np.zeros((len(classes), z.shape[1]))
    np.add.at(sums, y, z)
    self_sim = (z * z).sum(1)  # 1, or 0 for an all-zero feature vector
    to_class = z @ sums.T  # (n, C): sum of cosines of image i to each class, itself included
    same_pairs = n_c * (n_c - 1)
    within_sum = (sums * sums).sum(1) - np.bincount(y, weights=self_sim)
    gram = sums @ sums.T
    cross_sum, cross_pairs = gram.sum() - np.trace(gram), n_c.sum() ** 2 - (n_c**2).sum()
    sil = float("nan")
    if 1 < len(classes) < len(labels):
        own = n_c[y]
        # mean cosine distance to the other members of the own class, and to each other class
        a = (own - 1 - (to_class[np.arange(len(y)), y] - self_sim)) / np.maximum(own - 1, 1)
        dist = 1 - to_class / n_c[None, :]
        dist[np.arange(len(y)), y] = np.inf
        b = dist.min(axis=1)
        s_i = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
        sil = float(s_i.mean())
    return {
        "silhouette": sil,
        "within_class_cos": float(within_sum.sum() / same_pairs.sum()) if same_pairs.sum() else float("nan"),
        "cross_class_cos": float(cross_sum / cross_pairs) if cross_pairs else float("nan"),
    }


def evaluate(y_true: np.ndarray, logits: np.ndarray, train_counts: list[int]) -> dict:
    n = logits.shape[1]
    labels = list(range(n))
    y_pred = logits.argmax(axis=1)
    probs = softmax(logits.astype(np.float64), axis=1)
    prec, rec, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    la_pred = logit_adjusted_predictions(logits, train_counts)
    return {
        "per_class_acc": per_class_accuracy(y_true, y_pred, n),
        "accuracy": float((y_pred == y_true).mean()),
        "balanced_acc": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "roc_auc": roc_auc(y_true, probs),
        "precision": prec.tolist(),
        "recall": rec.tolist(),
        "f1": f1.tolist(),
        "per_class_acc_logit_adjusted": per_class_accuracy(y_true, la_pred, n),
        "balanced_acc_logit_adjusted": float(balanced_accuracy_score(y_true, la_pred)),
    }


DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def encode_labels(labels: np.ndarray) -> str | None:
    """Class indices as one character each ('0'-'9', 'a'-'z'), so a record can keep every test image's
    label and prediction compactly; None for more than 36 classes."""
    if len(labels) and int(np.max(labels)) >= len(DIGITS):
        return None
    return "".join(DIGITS[int(v)] for v in labels)


def decode_labels(text: str) -> np.ndarray:
    return np.array([DIGITS.index(ch) for ch in text], dtype=np.int64)


def encode_array(a: np.ndarray, dtype: str) -> dict:
    """An array as `dtype` little-endian bytes, zlib-compressed and base64-encoded, with its shape and the
    SHA-256 of the raw bytes: a record can carry every test image's probabilities in a few kilobytes, and
    a reader can tell a damaged block from a good one."""
    raw = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    return {
        "dtype": dtype,
        "shape": list(a.shape),
        "zlib_b64": base64.b64encode(zlib.compress(raw, 9)).decode("ascii"),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def decode_array(block: dict) -> np.ndarray:
    """The array of `encode_array`; ValueError (one line) when the block is damaged or its digest differs."""
    try:
        raw = zlib.decompress(base64.b64decode(block["zlib_b64"], validate=True))
        dtype = np.dtype(block["dtype"]).newbyteorder("<")
        a = np.frombuffer(raw, dtype=dtype).reshape(block["shape"])
    except (KeyError, TypeError, ValueError, zlib.error) as e:
        why = f"{type(e).__name__}: {e}"
        raise ValueError(f"a per-image block is damaged ({why}); re-run its run to rewrite it") from None
    if hashlib.sha256(raw).hexdigest() != block.get("sha256"):
        raise ValueError("a per-image block's SHA-256 does not match its bytes; re-run its run to rewrite it")
    return a.astype(dtype.newbyteorder("="))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def image_outcomes(y_true: np.ndarray, logits: np.ndarray, index: np.ndarray | None) -> dict:
    """Every image's label, arg-max prediction, log-probabilities and index in its source split, so two
    runs can be paired image by image and the calibration and review-queue numbers computed from the
    record alone. Log-probabilities (the log-softmax of the final logits, after any post-hoc step) in
    float16 rather than probabilities: float16 keeps a relative precision of 2^-11, which near a
    probability of 1 would round the small remainders of confident predictions to ties (1 - 1e-6 is 1);
    on the log scale the confident end keeps its resolution, and exp() gives each probability back
    within a relative 2^-11 * |log p| (0.03% at p = 0.5, 0.7% at p = 1e-6). Temperature scaling works on
    them as on logits (softmax ignores a per-image shift)."""
    out = {
        "labels": encode_labels(y_true),
        "predictions": encode_labels(logits.argmax(axis=1)),
        "log_probs": encode_array(log_softmax(logits), "float16"),
    }
    if index is not None:
        out["index"] = encode_array(np.asarray(index), "int32")
    return {k: v for k, v in out.items() if v is not None}


def outcome_arrays(outcome: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(labels, log-probabilities or None, source index or None) of a record's per-image block; records
    written before round four hold labels and predictions only."""
    labels = decode_labels(outcome["labels"])
    logp = decode_array(outcome["log_probs"]).astype(np.float64) if "log_probs" in outcome else None
    index = decode_array(outcome["index"]).astype(np.int64) if "index" in outcome else None
    return labels, logp, index
