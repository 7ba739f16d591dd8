import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import methods as M
from methods.cb import class_balanced_weights
from methods.fsc import fsc_layer_loss


def test_fsc_matches_an_independent_computation():
    h3 = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, 0.0], [0.0, 3.0, 1.0], [2.0, 0.0, 4.0]])
    h4 = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])

    def by_hand(h, y):
        h = h.numpy().astype(np.float64)
        n = len(h)
        total = 0.0
        for i in range(n):
            for j in range(n):
                cos = h[i] @ h[j] / (np.linalg.norm(h[i]) * np.linalg.norm(h[j]))
                total += (cos - float(y[i] == y[j])) ** 2
        return total / (n * n)

    fsc = M.parse_method("fsc", {"fsc": {"lam": "0.5"}}).auxiliaries[0]
    got = fsc({"layer3": h3, "layer4": h4}, y)
    expected = 0.5 * (by_hand(h3, y) + by_hand(h4, y))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # rows 0 and 3 are parallel and same-class: that pair contributes nothing
    assert fsc_layer_loss(h3[[0, 3]], y[[0, 3]]).item() == pytest.approx(0.0, abs=1e-7)


def test_fsc_single_class_batch_is_defined():
    h = torch.rand(5, 8)
    loss = fsc_layer_loss(h, torch.zeros(5, dtype=torch.long))
    assert torch.isfinite(loss)


def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    focal0 = M.parse_method("focal", {"focal": {"gamma": "0"}}).criterion
    assert focal0(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    focal2 = M.parse_method("focal").criterion
    assert focal2(logits, y).item() < F.cross_entropy(logits, y).item()


def test_cb_weights_match_the_formula():
    counts, beta = [800, 8], 0.9999
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    expected = [w / sum(raw) * 2 for w in raw]
    assert class_balanced_weights(counts, beta).tolist() == pytest.approx(expected, rel=1e-5)
    assert class_balanced_weights(counts, beta).sum().item() == pytest.approx(2.0)


def _ctx(counts, **kw):
    return M.TrainContext(class_counts=counts, feature_dims={}, device=torch.device("cpu"), seed=0, **kw)


def test_cb_reductions_against_hand_worked_values():
    """Cui et al.'s code divides the weighted sum by the batch size; PyTorch's weighted mean by the
    summed weights. Worked by hand for counts 800 / 8, beta 0.9999."""
    w_maj = (1 - 0.9999) / (1 - 0.9999**800)
    w_min = (1 - 0.9999) / (1 - 0.9999**8)
    # 1 - 0.9999^800 = 0.076887 and 1 - 0.9999^8 = 0.00079972, so raw weights 0.0013006 and 0.125044
    w0, w1 = 2 * w_maj / (w_maj + w_min), 2 * w_min / (w_maj + w_min)
    assert (w0, w1) == pytest.approx((0.0205882, 1.9794118), rel=1e-5)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 0])
    ce = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    cb = M.parse_method("cb").criterion
    cb.setup(_ctx([800, 8]))
    assert cb.reduction == "batch"
    assert cb(logits, y).item() == pytest.approx((w0 * ce[0] + w1 * ce[1] + w0 * ce[2]) / 3, rel=1e-5)
    cb_pt = M.parse_method("cb", {"cb": {"reduction": "weight_sum"}}).criterion
    cb_pt.setup(_ctx([800, 8]))
    expected = (w0 * ce[0] + w1 * ce[1] + w0 * ce[2]) / (w0 + w1 + w0)
    assert cb_pt(logits, y).item() == pytest.approx(expected, rel=1e-5)
    # A batch without a minority image: plain CE under weight_sum, CE scaled by w0 under batch.
    maj = torch.tensor([0, 0])
    assert cb_pt(logits[[0, 2]], maj).item() == pytest.approx((ce[0] + ce[2]) / 2, rel=1e-5)
    assert cb(logits[[0, 2]], maj).item() == pytest.approx(w0 * (ce[0] + ce[2]) / 2, rel=1e-5)


def test_os_epoch_is_class_balanced_and_redrawn():
    labels = np.array([0] * 100 + [1] * 3 + [2] * 10)
    os_ = M.parse_method("os").sampler
    rng = np.random.default_rng(0)
    e0, e1 = os_.epoch_indices(labels, 0, rng), os_.epoch_indices(labels, 1, rng)
    assert np.bincount(labels[e0]).tolist() == [100, 100, 100]
    assert set(e0[labels[e0] == 1]) == {100, 101, 102}
    assert not np.array_equal(e0, e1)


def test_supcon_uses_pytorch_metric_learning(monkeypatch):
    from pytorch_metric_learning import losses

    calls = []
    original = losses.SupConLoss.forward

    def spy(self, *a, **k):
        calls.append(self.temperature)
        return original(self, *a, **k)

    monkeypatch.setattr(losses.SupConLoss, "forward", spy)
    sc = M.parse_method("supcon").auxiliaries[0]
    sc.setup(M.TrainContext(class_counts=[4, 4], feature_dims={"layer4": 16}, device=torch.device("cpu"), seed=0))
    loss = sc({"layer4": torch.randn(8, 16)}, torch.tensor([0, 1] * 4))
    assert torch.isfinite(loss) and calls == [0.1]
    assert len(sc.parameters()) == 4  # the projection head is trained with the model


def test_composition_is_order_free_and_canonical():
    assert M.parse_method("fsc+os").name == M.parse_method("os+fsc").name == "os+fsc"
    assert M.parse_method("ce+fsc").name == "fsc"
    c = M.parse_method("focal+fsc+os")
    assert (c.sampler.name, c.criterion.name, [a.name for a in c.auxiliaries]) == ("os", "focal", ["fsc"])
    assert M.parse_method("crt+mixup+ldam+opl").name == "mixup+ldam+opl+crt"  # by role, then name
    assert M.parse_method("mixup+drw+ldam+opl").name == "mixup+ldam+drw+opl"
    assert M.parse_method("supcon+fsc").main_stage().taps == ("layer3", "layer4")


@pytest.mark.parametrize(
    "spec, overrides, message",
    [
        ("dropout", {}, "unknown method 'dropout'; registered: bcl, cb, cbs"),
        ("os+os", {}, "names a method twice"),
        ("focal+cb", {}, "two methods of role criterion"),
        ("fsc", {"fsc": {"lamda": "1"}}, "valid for fsc: lam, layers, centre"),
        ("fsc", {"fsc": {"lam": "big"}}, "not a valid float"),
        ("fsc", {"fsc": {"lam": "nan"}}, "not a finite number"),
        ("fsc", {"fsc": {"layers": "layer5"}}, "subset of layer1"),
        ("focal", {"focal": {"gamma": "-1"}}, "focal.gamma=-1.0 is out of range: it must be >= 0"),
        ("cb", {"cb": {"base": "hinge"}}, "cb.base='hinge' is not a valid"),
        ("cb", {"cb": {"beta": "1"}}, "must be < 1"),
        ("la+cb", {}, "two methods of role criterion"),
        ("os+la", {}, "corrects for the class prior twice"),
        ("drw+cb", {}, "corrects for the class prior twice"),
        ("lws+taunorm", {}, "corrects for the class prior twice: lws re-balances the classifier and taunorm"),
        ("ldam+taunorm", {}, "changes the classifier twice"),
        # cRT, LWS and tau-norm correct the prior: a second correction is refused (issue 25, item 4)
        ("crt+pla", {}, "crt re-balances the classifier and pla also corrects"),
        ("lws+pla", {}, "lws re-balances the classifier and pla also corrects"),
        ("crt+drw", {}, "crt re-balances the classifier and drw also corrects"),
        ("taunorm+la", {}, "corrects for the class prior twice (la and taunorm)"),
        ("os+taunorm", {}, "os re-balances the batches and taunorm corrects"),
        ("os+smote", {}, "two methods of role sampler"),
    ],
)
def test_bad_method_specs_are_one_line_errors(spec, overrides, message):
    """Each refused composition names both culprits in one line."""
    with pytest.raises(M.MethodError) as e:
        M.parse_method(spec, overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_registering_needs_a_role():
    with pytest.raises(TypeError):

        @M.register
        class NoRole(M.Method):
            name = "norole"


def test_supcon_gives_no_loss_on_a_one_class_batch():
    """pytorch-metric-learning's convention (the paper's loss would be log(B - 1) here, at collapse)."""
    sc = M.parse_method("supcon").auxiliaries[0]
    sc.setup(M.TrainContext(class_counts=[4, 4], feature_dims={"layer4": 16}, device=torch.device("cpu"), seed=0))
    assert sc({"layer4": torch.randn(8, 16)}, torch.zeros(8, dtype=torch.long)).item() == 0.0


def test_a_sampler_under_classifier_retraining_is_one_correction():
    """os shapes only cRT's / LWS's representation stage; the classifier is re-balanced once."""
    for spec in ("os+crt", "os+lws", "cbs+crt"):
        assert M.parse_method(spec).stages()[1].sampler.name == "cbs"
