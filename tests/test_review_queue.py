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


# ---- calibration and selective prediction (bench/review.py) -------------------------------------------


def test_ece_by_hand_and_classwise_ece_by_hand():
    """Four images, each alone in its bin: confidences 0.9 (right), 0.8 (wrong), 0.6 (wrong), 0.55 (right):
    ECE = (0.1 + 0.8 + 0.6 + 0.45) / 4 = 0.4875. Class-wise, class 0's probabilities 0.9, 0.2, 0.6, 0.45
    against hits 1, 1, 0, 0 give (0.1 + 0.8 + 0.6 + 0.45) / 4 too, and class 1's the same by symmetry."""
    from bench.review import classwise_ece, ece

    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([0, 0, 1, 1])
    assert ece(p, y) == pytest.approx(0.4875)
    assert classwise_ece(p, y) == pytest.approx(0.4875)
    # two images sharing a bin: |mean hit - mean p| once for the pair, weighted by 2 of 2 images
    q = np.array([[0.71, 0.29], [0.69, 0.31]])
    assert ece(q, np.array([0, 1])) == pytest.approx(abs(0.5 - 0.70))


def test_nll_and_brier_equal_scikit_learn():
    from sklearn.metrics import brier_score_loss, log_loss

    from bench.metrics import log_softmax
    from bench.review import brier, nll

    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(300, 2)) * 3, rng.integers(0, 2, 300)
    p = softmax(logits, axis=1)
    assert nll(log_softmax(logits), y) == pytest.approx(log_loss(y, p), rel=1e-9)
    # scikit-learn's binary Brier score is the positive class's squared error; summed over both classes: twice it
    assert brier(p, y) == pytest.approx(2 * brier_score_loss(y, p[:, 1]), rel=1e-9)


def test_temperature_scaling_recovers_a_planted_temperature():
    """Labels drawn from softmax(z / 2): the NLL-optimal temperature on 20000 images is 2 (within 5%), and
    scaling lowers the ECE of an over-confident model."""
    from bench.review import ece, fit_temperature

    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 3)) * 4
    p_true = softmax(z / 2, axis=1)
    y = np.array([rng.choice(3, p=row) for row in p_true])
    t = fit_temperature(z, y)
    assert t == pytest.approx(2.0, rel=0.05)
    assert ece(softmax(z / t, axis=1), y) < ece(softmax(z, axis=1), y) / 3


def test_risk_coverage_and_aurc_by_hand():
    """Confidences 0.95 (right), 0.9 (wrong), 0.8 (right), 0.7 (wrong): risks 0, 1/2, 1/3, 2/4; AURC their
    mean 1/3; accuracy at 50% coverage 1/2, at 75% 2/3. A tie in confidence comes in as one block."""
    from bench.review import accuracy_at, aurc, risk_coverage

    p = np.array([[0.95, 0.05], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    y = np.array([0, 0, 0, 0])
    cov, risk = risk_coverage(p, y)
    assert cov.tolist() == [0.25, 0.5, 0.75, 1.0] and risk == pytest.approx([0, 1 / 2, 1 / 3, 2 / 4])
    assert aurc(p, y) == pytest.approx(np.mean([0, 1 / 2, 1 / 3, 1 / 2]))
    assert accuracy_at(p, y, 0.5) == pytest.approx(0.5) and accuracy_at(p, y, 0.75) == pytest.approx(2 / 3)
    tied = np.array([[0.9, 0.1], [0.1, 0.9]])  # same confidence, one right, one wrong: in either order
    assert risk_coverage(tied, np.array([0, 0]))[1].tolist() == [0.5, 0.5]
    assert risk_coverage(tied[::-1], np.array([0, 0]))[1].tolist() == [0.5, 0.5]


def test_the_review_share_equals_a_hand_count():
    """Four rare images with rare-class probabilities 0.9, 0.6, 0.3, 0.05; to catch 75% (3 of 4) the
    threshold is 0.3. Five common images at 0.5, 0.2, 0.35, 0.1, 0.31: three reach it, 60% of the common
    class. At the training proportions 100 : 1 the share of all images flagged is (100 x 0.6 + 1 x 0.75) /
    101. The rare image at 0.05 is called common with confidence 0.95: one confident miss in four."""
    from bench.review import rare_review

    rare_p = np.array([0.9, 0.6, 0.3, 0.05, 0.5, 0.2, 0.35, 0.1, 0.31])
    p = np.stack([1 - rare_p, rare_p], axis=1)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    got = rare_review(p, y, prior=[100, 1], target=0.75)
    assert got["threshold"] == pytest.approx(0.3) and got["rare_caught"] == pytest.approx(0.75)
    assert got["common_share"] == pytest.approx(3 / 5)
    assert got["review_share"] == pytest.approx((100 * 0.6 + 0.75) / 101)
    assert got["confident_miss"] == pytest.approx(1 / 4)


def test_the_report_shows_the_review_queue_of_boards_with_probabilities(tmp_path):
    """Tiny runs of os and ce (two seeds, a validation split) reported: the board's page has the review-queue
    table, its numbers are bench/review.py's on the records' blocks, and leaderboard.md names the board; a
    record without probabilities (an older one) leaves its board marked as lacking them."""
    from bench.cli import main
    from bench.review import review

    specs = tiny_specs(["os", "ce"], seeds=(0, 1), train_changes={"val_per_class": 5})
    recs = run_local(specs, tmp_path / "runs", DEVICE, RunOptions(plain=True)).written
    out = tmp_path / "report"
    assert main(["report", "--runs", str(tmp_path / "runs"), "--out", str(out), "--no-figures",
                 "--review-target", "0.9"]) == 0  # fmt: skip
    [page] = list((out / "boards").glob("*.md"))
    text = page.read_text()
    assert "## Review queue" in text and "to catch 90% of rare" in text
    row = next(line for line in text.splitlines() if line.startswith("| ce ") and "1:0.25" in line)
    ce = [r for r in recs if r["spec"]["method"] == "ce"]
    by_hand = [
        review(*outcome_arrays(r["metrics"]["test_outcome"])[:2], r["counts"]["train"],
               outcome_arrays(r["metrics"]["val_outcome"])[:2], 0.9)
        for r in ce
    ]  # fmt: skip
    ece = np.array([x.ece for x in by_hand])
    assert f"{ece.mean():.3f}±{ece.std(ddof=1):.3f}" in row
    share = np.array([x.common_share for x in by_hand])
    assert f"{share.mean():.3f}±{share.std(ddof=1):.3f}" in row
    assert all(x.temperature is not None for x in by_hand)
    assert "Boards with them" in (out / "leaderboard.md").read_text()
    # the README's prose quotes the same share by key, refreshed and checked like every quoted number
    quoted = tmp_path / "README.md"
    quoted.write_text(
        f"<!--v:{page.stem}:ce:0.25:review:common_share-->?<!--/v--> <!--v:{page.stem}:ce:0.25:minority-->?<!--/v-->\n"
    )
    assert main(["report", "--runs", str(tmp_path / "runs"), "--out", str(out), "--no-figures",
                 "--review-target", "0.9", "--readme", str(quoted)]) == 0  # fmt: skip
    assert f"-->{share.mean():.3f}±{share.std(ddof=1):.3f}<!--" in quoted.read_text()
    rare = np.array([r["metrics"]["per_class_acc"][-1] for r in ce])
    assert f"-->{rare.mean():.3f}±{rare.std(ddof=1):.3f}<!--" in quoted.read_text()
    # the same board from records without probabilities: marked as lacking them
    for r in recs:
        for key in ("test_outcome", "val_outcome"):
            r["metrics"][key].pop("log_probs")
        store.write_record(tmp_path / "old", r)
    assert main(["report", "--runs", str(tmp_path / "old"), "--out", str(tmp_path / "r2"), "--no-figures"]) == 0
    [old_page] = list((tmp_path / "r2" / "boards").glob("*.md"))
    assert "No record of this board keeps per-image probabilities" in old_page.read_text()
    assert "1 boards' records predate them" in (tmp_path / "r2" / "leaderboard.md").read_text()


def test_a_bad_review_target_is_one_line(tmp_path, capsys):
    from bench.cli import main

    (tmp_path / "runs").mkdir()
    assert main(["report", "--runs", str(tmp_path / "runs"), "--review-target", "1.5"]) == 2
    assert "--review-target is a share" in capsys.readouterr().err
