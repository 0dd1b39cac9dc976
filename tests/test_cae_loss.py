"""Paper B's losses on hand-computable inputs."""

import math

import pytest
import torch

from clipscope_utils.cae import CAEError
from clipscope_utils.cae.loss import attribution_loss, itc_loss, role_means, total_loss


def test_role_means_average_only_masked_positions():
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.2], [0.4, 0.3, 0.2, 0.1]])
    mask = torch.tensor([[False, True, True, False], [False, False, False, False]])
    mean, has = role_means(scores, mask)
    assert mean[0].item() == pytest.approx(0.35)
    assert has.tolist() == [True, False]


def test_hinge_by_hand():
    scores = torch.tensor([[0.0, 0.6, 0.1, 0.3],    # a_obj 0.6, a_comp 0.2 -> 0.4
                           [0.0, 0.1, 0.5, 0.4],    # a_obj 0.1, a_comp 0.45 -> 0 (clamped)
                           [0.0, 0.9, 0.1, 0.0]])   # no composition token -> left out
    objects = torch.tensor([[0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    comp = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert attribution_loss(scores, objects, comp).item() == pytest.approx((0.4 + 0.0) / 2)
    # the margin shifts every difference before the clamp: (0.4 + 0.1) and max(-0.35 + 0.1, 0)
    assert attribution_loss(scores, objects, comp, margin=0.1).item() == pytest.approx(0.5 / 2)


def test_hinge_gradient_flows_only_through_active_captions():
    scores = torch.tensor([[0.0, 0.6, 0.2], [0.0, 0.1, 0.5]], requires_grad=True)
    objects = torch.tensor([[0, 1, 0], [0, 1, 0]], dtype=torch.bool)
    comp = torch.tensor([[0, 0, 1], [0, 0, 1]], dtype=torch.bool)
    attribution_loss(scores, objects, comp).backward()
    assert scores.grad.tolist() == [[0.0, 0.5, -0.5], [0.0, 0.0, 0.0]]


def test_hinge_without_any_pair_is_zero_and_keeps_graph():
    scores = torch.rand(2, 3, requires_grad=True)
    none = torch.zeros(2, 3, dtype=torch.bool)
    loss = attribution_loss(scores, none, none)
    loss.backward()
    assert loss.item() == 0.0 and scores.grad.abs().sum().item() == 0.0


def test_shape_mismatch_is_refused():
    with pytest.raises(CAEError, match="shape"):
        role_means(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.bool))


def _features(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


def test_itc_equals_open_clip_clip_loss():
    import open_clip

    img, txt, scale = _features(6, 8, 0), _features(6, 8, 1), torch.tensor(14.3)
    expected = open_clip.ClipLoss()(img, txt, scale)
    assert itc_loss(img, txt, scale).item() == pytest.approx(expected.item(), rel=1e-6)


def test_itc_hard_negatives_join_only_the_image_to_text_softmax():
    img, txt, neg, scale = _features(3, 4, 0), _features(3, 4, 1), _features(3, 4, 2), torch.tensor(5.0)
    texts = torch.cat([txt, neg])
    i2t = sum(-math.log(torch.softmax(scale * img[i] @ texts.T, 0)[i].item()) for i in range(3)) / 3
    t2i = sum(-math.log(torch.softmax(scale * txt[i] @ img.T, 0)[i].item()) for i in range(3)) / 3
    assert itc_loss(img, txt, scale, neg).item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)


def test_itc_refuses_unpaired_rows():
    with pytest.raises(CAEError, match="pairs them by row"):
        itc_loss(_features(3, 4, 0), _features(2, 4, 1), torch.tensor(1.0))


def test_total_loss_weights_the_hinge():
    assert total_loss(torch.tensor(2.0), torch.tensor(0.5), 4.0).item() == pytest.approx(4.0)
