"""Issue 35: per-image probabilities in every record, paired image by image across runs."""

import json

import numpy as np
import pytest
from scipy.special import softmax

from bench import store
from bench.executors import RunOptions, run_local
from bench.metrics import decode_array, encode_array, image_outcomes, outcome_arrays

from .conftest import tiny_specs
from .test_harness import DEVICE


def test_encoded_arrays_round_trip_and_a_damaged_block_is_one_line():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 3)).astype(np.float16)
    block = encode_array(a, "float16")
    assert np.array_equal(decode_array(block), a)
    idx = np.array([5, 9, 1000, 2**31 - 1])
    assert np.array_equal(decode_array(encode_array(idx, "int32")), idx)
    damaged = dict(block, sha256="0" * 64)
    with pytest.raises(ValueError, match="SHA-256 does not match"):
        decode_array(damaged)
    with pytest.raises(ValueError, match="damaged"):
        decode_array(dict(block, zlib_b64="not base64!"))


def test_log_probabilities_keep_the_probabilities_and_the_confident_end():
    """float16 log-probabilities give each log-probability back within float16's half step (2^-11 of its
    size), and the small remainder of a confident prediction (1e-6) is kept to a relative 1%, where float16
    probabilities would round 1 - 1e-6 to 1."""
    logits = np.array([[0.0, 1.0, -2.0], [14.0, 0.2, 0.0], [3.0, 3.0, 3.0]])
    out = image_outcomes(np.array([1, 0, 2]), logits, np.array([7, 3, 11]))
    labels, logp, index = outcome_arrays(out)
    assert labels.tolist() == [1, 0, 2] and index.tolist() == [7, 3, 11]
    assert out["predictions"] == "100"
    p = softmax(logits, axis=1)
    assert np.all(np.abs(logp - np.log(p)) <= 2**-11 * np.abs(np.log(p)) + 1e-12)
    assert np.exp(logp[1, 2]) == pytest.approx(p[1, 2], rel=1e-2) and p[1, 2] < 1e-6
    assert np.float16(p[1, 0]) == 1.0  # what float16 probabilities would have kept


def test_every_new_record_has_probabilities_paired_image_by_image(tmp_path):
    """Two methods of one task and seed: their records' test blocks name the same source images in the
    same order, so the report pairs them image by image; the validation split has its block too."""
    specs = tiny_specs(["ce", "os"], train_changes={"val_per_class": 5})
    recs = run_local(specs, tmp_path, DEVICE, RunOptions(plain=True)).written
    assert [r["status"] for r in recs] == ["ok", "ok"]
    blocks = []
    for rec in recs:
        on_disk = json.loads(store.record_path(tmp_path, rec["key"]).read_text())
        m = on_disk["metrics"]
        labels, logp, index = outcome_arrays(m["test_outcome"])
        assert logp.shape == (len(labels), 2) and np.allclose(np.exp(logp).sum(1), 1, atol=2e-3)
        # the record's own metrics follow from its probabilities
        pred = logp.argmax(1)
        per_class = [float((pred[labels == k] == k).mean()) for k in range(2)]
        assert per_class == pytest.approx(m["per_class_acc"])
        v_labels, v_logp, v_index = outcome_arrays(m["val_outcome"])
        assert np.bincount(v_labels).tolist() == [5, 5] and v_logp.shape == (10, 2)
        blocks.append((labels, index, v_index))
    (la, ia, va), (lb, ib, vb) = blocks
    assert np.array_equal(ia, ib) and np.array_equal(la, lb) and np.array_equal(va, vb)
    assert len(np.unique(ia)) == len(ia)  # each test image once
    # another seed draws other training images but tests on the same images
    [other] = run_local(tiny_specs(["ce"], seeds=(1,)), tmp_path / "s1", DEVICE, RunOptions(plain=True)).written
    assert np.array_equal(outcome_arrays(other["metrics"]["test_outcome"])[2], ia)
