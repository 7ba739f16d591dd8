"""The one-stage baselines of round two, each against values worked out by hand from its paper's
formula (not against the code itself), and the hooks they need."""

import math

import numpy as np
import pytest
import torch

import methods as M
from methods.class_aware import class_probabilities
from methods.ldam import ldam_margins


def ctx(counts, **kw):
    return M.TrainContext(class_counts=counts, feature_dims={"layer4": 4}, device=torch.device("cpu"), seed=0, **kw)


def criterion(name, counts, overrides=None, **kw):
    c = M.parse_method(name, overrides).criterion
    c.setup(ctx(counts, batch_prior=[n / sum(counts) for n in counts], **kw))
    return c


def test_la_adds_tau_log_prior_to_the_logits():
    """Menon et al. Eq. 10: CE(z + tau log pi). Counts 3:1 -> pi = (0.75, 0.25)."""
    la = criterion("la", [3, 1])
    z = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    y = torch.tensor([0, 1])
    a = [1.0 + math.log(0.75), 2.0 + math.log(0.25)]  # sample 0's adjusted logits: 0.7123, 0.6137
    b = [0.5 + math.log(0.75), -1.0 + math.log(0.25)]
    l0 = -a[0] + math.log(math.exp(a[0]) + math.exp(a[1]))
    l1 = -b[1] + math.log(math.exp(b[0]) + math.exp(b[1]))
    assert la(z, y).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    la2 = criterion("la", [3, 1], {"la": {"tau": "2"}})
    a2 = [1.0 + 2 * math.log(0.75), 2.0 + 2 * math.log(0.25)]
    assert la2(z[:1], y[:1]).item() == pytest.approx(-a2[0] + math.log(math.exp(a2[0]) + math.exp(a2[1])), rel=1e-6)


def test_balanced_softmax_is_la_at_tau_one():
    """Ren et al.: p_y = n_y e^{z_y} / sum_j n_j e^{z_j}. Counts, not shares: the constant cancels."""
    counts = [800, 40, 8]
    torch.manual_seed(0)
    z, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    n = torch.tensor(counts, dtype=torch.float64)
    bs = -(torch.log(n[y] * torch.exp(z.double()[torch.arange(16), y])) - torch.log((n * torch.exp(z.double())).sum(1)))
    assert criterion("la", counts)(z, y).item() == pytest.approx(bs.mean().item(), rel=1e-5)


def test_ldam_margins_and_loss_by_hand():
    """Cao et al.: m_c = C / n_c^(1/4), the largest 0.5; the true class's logit lowered by s * m_c."""
    m = ldam_margins([100, 1], 0.5)
    assert m.tolist() == pytest.approx([0.5 * 100**-0.25, 0.5], rel=1e-6)  # 0.158114, 0.5
    ldam = criterion("ldam", [100, 1])
    z = torch.tensor([[3.0, 1.0], [3.0, 1.0]])  # the model's logits are already s * cos
    # label 1 (minority): its logit 1 - 30 * 0.5 = -14; label 0: 3 - 30 * 0.158114 = -1.743416
    l_min = 14 + math.log(math.exp(3) + math.exp(-14))
    l_maj = 1.743416 + math.log(math.exp(-1.743416) + math.exp(1))
    assert ldam(z[:1], torch.tensor([1])).item() == pytest.approx(l_min, rel=1e-6)
    assert ldam(z[1:], torch.tensor([0])).item() == pytest.approx(l_maj, rel=1e-5)
    model = torch.nn.Module()
    model.fc = torch.nn.Linear(4, 2)
    M.parse_method("ldam").criterion.adapt_model(model)
    h = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    w = model.fc.weight.detach()
    cos = (h / h.norm()) @ (w / w.norm(dim=0, keepdim=True))
    assert torch.allclose(model.fc(h), 30 * cos, atol=1e-5) and (model.fc(h).abs() <= 30 + 1e-4).all()


def test_drw_switches_class_balanced_weights_on_at_its_start():
    drw = M.parse_method("drw").reweighting
    drw.setup(ctx([800, 8]))
    state = lambda step: M.TrainState(step=step, total_steps=240)
    assert drw.weights(state(191))[0] is None  # 191 / 240 < 0.8
    w, reduction = drw.weights(state(192))
    assert reduction == "weight_sum" and w.tolist() == pytest.approx([0.0205882, 1.9794118], rel=1e-5)
    # CE-DRW after the switch, PyTorch's weighted mean, worked by hand for one batch of two
    ce = M.parse_method("ce").criterion
    z, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    ce_losses = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1))]
    expected = (0.0205882 * ce_losses[0] + 1.9794118 * ce_losses[1]) / (0.0205882 + 1.9794118)
    assert ce(z, y, weight=w, reduction=reduction).item() == pytest.approx(expected, rel=1e-5)


def test_soft_targets_weigh_the_class_losses():
    """A soft target t gives sum_c t_c L_c: for CE, the cross-entropy against the distribution t."""
    ce = M.parse_method("ce").criterion
    z = torch.tensor([[1.0, 0.0]])
    lse = math.log(math.e + 1)
    t = torch.tensor([[0.25, 0.75]])
    assert ce(z, t).item() == pytest.approx(0.25 * (lse - 1) + 0.75 * lse, rel=1e-6)
    assert ce(z, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(ce(z, torch.tensor([0])).item())


def test_class_aware_probabilities_and_epochs():
    assert class_probabilities([100, 1], 0.5).tolist() == pytest.approx([10 / 11, 1 / 11])
    assert class_probabilities([100, 1], 0.0).tolist() == pytest.approx([0.5, 0.5])
    labels = np.array([0] * 900 + [1] * 100)
    rng = np.random.default_rng(0)
    for name, expected in (("cbs", 0.5), ("sqrt", math.sqrt(100) / (math.sqrt(900) + math.sqrt(100)))):
        sampler = M.parse_method(name).sampler
        idx = np.concatenate([sampler.epoch_indices(labels, e, rng) for e in range(20)])
        assert len(idx) == 20 * 1000 and set(labels[idx[labels[idx] == 1]]) == {1}
        assert (labels[idx] == 1).mean() == pytest.approx(expected, abs=0.01)  # 20000 draws: sd ~0.0035
        assert sampler.batch_prior([900, 100])[1] == pytest.approx(expected)
    pb = M.parse_method("pb").sampler
    pb.setup(M.TrainContext(class_counts=[900, 100], feature_dims={}, device=torch.device("cpu"), seed=0,
                            total_steps=100, batch_size=100))  # fmt: skip
    shares = []
    # 10 steps per epoch of 1000: t = step / (100 - 10), so the last epoch (from step 90) is class-balanced
    for step in (0, 45, 90):
        pb.on_step(M.TrainState(step=step, total_steps=100))
        idx = np.concatenate([pb.epoch_indices(labels, 0, rng) for _ in range(20)])
        shares.append((labels[idx] == 1).mean())
    # p_min(t) = (1 - t) * 0.1 + t * 0.5
    assert shares == pytest.approx([0.1, 0.3, 0.5], abs=0.012)


def test_smote_interpolates_between_same_class_images_and_adapts_k():
    x = torch.zeros(13, 1, 2, 2, dtype=torch.uint8)
    x[:10] = 10  # majority: constant 10
    x[10, 0, 0, 0], x[11, 0, 0, 0], x[12, 0, 0, 0] = 100, 200, 250  # three minority images
    y = torch.tensor([0] * 10 + [1] * 3)
    smote = M.parse_method("smote").sampler  # k = 5 requested, 2 possible
    xs, ys = smote.prepare(x, y, np.random.default_rng(0))
    assert np.bincount(ys.numpy()).tolist() == [10, 10]
    new = xs[13:]
    assert (ys[13:] == 1).all() and (new[:, 0, 0, 0] >= 100).all() and (new[:, 0, 0, 0] <= 250).all()
    assert (new[:, 0, 1:] == 0).all() and (new[:, 0, 0, 1] == 0).all()  # other pixels stay on the segment
    with pytest.raises(M.MethodError, match="at least 2 images of every class"):
        smote.prepare(x[:11], y[:11], np.random.default_rng(0))


class FixedRng:
    """Stands in for a transform's generator: a fixed lam and a fixed pairing."""

    def __init__(self, lam, perm):
        self.lam, self.perm = lam, np.array(perm)

    def beta(self, a, b):
        return self.lam

    def permutation(self, n):
        return self.perm


def test_mixup_by_hand():
    """Zhang et al.: x = lam x_i + (1 - lam) x_j, target lam y_i + (1 - lam) y_j."""
    mix = M.parse_method("mixup").transform
    mix.setup(ctx([100, 1]))
    mix.rng = FixedRng(0.3, [1, 0, 3, 2])
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1, 1)
    xm, t = mix(x, torch.tensor([0, 0, 1, 0]))
    assert xm.flatten().tolist() == pytest.approx([0.3 + 1.4, 0.6 + 0.7, 0.9 + 2.8, 1.2 + 2.1])
    # row 2 (a dog) is mixed with row 3 (a horse) at 0.3, row 3 with row 2
    assert t.flatten().tolist() == pytest.approx([1, 0, 1, 0, 0.7, 0.3, 0.3, 0.7])
    real = M.parse_method("mixup").transform
    real.setup(ctx([100, 1]))
    _, t = real(torch.zeros(64, 1, 1, 1), torch.randint(0, 2, (64,)))
    assert torch.allclose(t.sum(1), torch.ones(64))


def test_remix_rule_by_hand():
    """Chou et al. Eq. 5, kappa 3, tau 0.5: majority i (n_i/n_j = 100 >= 3) with lam < 0.5 -> y_j;
    lam >= 0.5 -> lam; minority i (n_i/n_j = 0.01 <= 1/3) with 1 - lam < 0.5 -> y_i."""
    remix = M.parse_method("remix").transform
    remix.setup(ctx([100, 1]))
    x, y = torch.zeros(2, 1, 1, 1), torch.tensor([0, 1])  # image 0 majority, image 1 minority, swapped
    remix.rng = FixedRng(0.3, [1, 0])
    _, t = remix(x, y)
    assert t[0].tolist() == [0.0, 1.0]  # majority image at lam 0.3: the minority label alone
    # minority i, 1 - lam = 0.7 >= tau: mixup's label 0.3 y_i + 0.7 y_j
    assert t[1].tolist() == pytest.approx([0.7, 0.3])
    remix.rng = FixedRng(0.8, [1, 0])
    _, t = remix(x, y)
    assert t[0].tolist() == pytest.approx([0.8, 0.2])  # lam >= tau: mixup's label
    assert t[1].tolist() == [0.0, 1.0]  # minority i, 1 - lam = 0.2 < tau: the minority label alone


def test_opl_by_hand():
    """Ranasinghe et al.: (1 - mean same-class cos) + gamma * mean cross-class cos, diagonal excluded."""
    h = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    opl = M.parse_method("opl").auxiliaries[0]
    s = 1 / math.sqrt(2)  # cos(h0, h1); the only same-class pair (counted twice, same value)
    d = (0.0 + s) / 2  # cos(h0, h2) = 0, cos(h1, h2) = 1/sqrt(2)
    assert opl({"layer4": h}, y).item() == pytest.approx(1.0 * ((1 - s) + 0.5 * d), rel=1e-6)  # lam = 1, the authors'


def test_fsc_balanced_pairs_by_hand():
    """balance=pairs: the mean of (S-1)^2 over same-class pairs and the mean of S^2 over
    different-class pairs (diagonal excluded), averaged."""
    h = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    s = 1 / math.sqrt(2)
    pos = (s - 1) ** 2
    neg = (0.0**2 + s**2) / 2
    fsc = M.parse_method("fsc", {"fsc": {"balance": "pairs", "layers": "layer4"}}).auxiliaries[0]
    assert fsc({"layer4": h}, y).item() == pytest.approx((pos + neg) / 2, rel=1e-6)
    paper = M.parse_method("fsc", {"fsc": {"layers": "layer4"}}).auxiliaries[0]
    cos = torch.tensor([[1, s, 0], [s, 1, s], [0, s, 1]])
    target = torch.tensor([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert paper({"layer4": h}, y).item() == pytest.approx(((cos - target) ** 2).mean().item(), rel=1e-6)


def test_focal_below_gamma_one_has_finite_gradients_when_a_probability_rounds_to_one():
    """(1 - p)^gamma with gamma < 1 has an infinite slope at p = 1: the os+focal sweep at gamma 0.5
    went NaN by step 36 before the floor."""
    from methods.focal import focal_class_losses

    logits = torch.tensor([[40.0, -40.0], [0.3, -0.2]], requires_grad=True)  # p = 1 in float32 for row 0
    focal_class_losses(logits, 0.5).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # gamma >= 1 keeps the exact formula (records made with it keep their arithmetic)
    x = torch.randn(5, 3)
    p = x.softmax(1)
    assert torch.equal(focal_class_losses(x, 2.0), -((1 - x.log_softmax(1).exp()) ** 2.0) * x.log_softmax(1))
    assert torch.allclose(focal_class_losses(x, 0.5), -((1 - p) ** 0.5) * p.log(), atol=1e-6)
