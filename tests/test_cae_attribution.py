"""Paper B's four text attributions (sections 3.1-3.4, appendix I) on a random-init clipscope-tiny CLIP."""

import copy
import logging

import open_clip
import pytest
import torch
import torch.nn.functional as F

import clipscope_utils.models.registry  # noqa: F401  (registers clipscope-tiny with open_clip)
from clipscope_utils.cae import CAEError
from clipscope_utils.cae import attribution as A

torch.set_num_threads(1)

CAPTIONS = ["a red cube left of a blue ball", "a green sphere", "a small dog on a big red car"]


@pytest.fixture(scope="module")
def tiny():
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded
    torch.manual_seed(0)
    return open_clip.create_model("clipscope-tiny").eval()


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("clipscope-tiny")


@pytest.fixture(scope="module")
def tokens(tokenizer):
    return tokenizer(CAPTIONS)


@pytest.fixture(scope="module")
def images(tiny, tokens):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(len(CAPTIONS), tiny.text_projection.shape[1], generator=gen)


def eot_of(tokens):
    return tokens.argmax(-1)


def s_of(model, images, tokens):
    """S(I_n, T_n) straight from open_clip's encode_text, as paper B eq. 1."""
    text = model.encode_text(tokens)
    return model.logit_scale.exp() * (F.normalize(images, dim=-1) * F.normalize(text, dim=-1)).sum(-1)


# --------------------------------------------------------------------------------------------------
# explicit attention
# --------------------------------------------------------------------------------------------------


def test_explicit_attention_gives_encode_text_and_records_every_layer(tiny, tokens):
    with torch.no_grad():
        expected = tiny.encode_text(tokens)
        with A.explicit_attention(tiny) as record:
            got = tiny.encode_text(tokens)
    assert (got - expected).abs().max() < 1e-5
    assert len(record) == 4 and all(a.shape == (3, 2, 32, 32) for a in record)
    assert torch.allclose(record[2].sum(-1), torch.ones(3, 2, 32), atol=1e-6)
    assert (record[0].triu(1) == 0).all()  # the causal mask the model passes is applied
    assert all("forward" not in vars(b.attn) for b in tiny.transformer.resblocks)


def test_explicit_attention_is_in_the_graph_and_restored_on_error(tiny, tokens):
    with A.explicit_attention(tiny) as record:
        text = tiny.encode_text(tokens)
    (g,) = torch.autograd.grad(text.sum(), record[-1])
    assert g.shape == record[-1].shape and g.abs().sum() > 0
    with pytest.raises(RuntimeError, match="boom"):
        with A.explicit_attention(tiny):
            raise RuntimeError("boom")
    assert all("forward" not in vars(b.attn) for b in tiny.transformer.resblocks)
    with A.explicit_attention(tiny):
        with pytest.raises(CAEError, match="already patched"):
            with A.explicit_attention(tiny):
                pass


def test_unpatchable_text_towers_are_refused(tiny, tokens):
    with pytest.raises(CAEError, match="no open_clip CLIP text tower"):
        A.attention_attribution(torch.nn.Linear(2, 2), tokens)
    custom = copy.deepcopy(tiny)
    custom.transformer.resblocks[1] = torch.nn.Identity()
    with pytest.raises(CAEError, match="block 1"):
        A.attention_attribution(custom, tokens)
    checkpointed = copy.deepcopy(tiny)
    checkpointed.set_grad_checkpointing(True)
    with pytest.raises(CAEError, match="checkpointing"):
        A.attention_attribution(checkpointed, tokens)
    with pytest.raises(CAEError, match=r"\[N >= 1, 32\]"):
        A.attention_attribution(tiny, tokens[:, :16])


# --------------------------------------------------------------------------------------------------
# attention (3.1)
# --------------------------------------------------------------------------------------------------


def test_attention_attribution_is_uniform_when_queries_and_keys_are_zero(tiny, tokens):
    blind = copy.deepcopy(tiny)
    with torch.no_grad():
        for block in blind.transformer.resblocks:
            block.attn.in_proj_weight[:128].zero_()  # q and k rows of the [3 * 64, 64] projection
            block.attn.in_proj_bias[:128].zero_()
    got = A.attention_attribution(blind, tokens)
    eot = eot_of(tokens)
    pos = torch.arange(32)
    expected = (pos <= eot[:, None]).float() / (eot[:, None] + 1)  # "a green sphere": EOT at 4, so 1/5 each
    assert torch.allclose(got, expected, atol=1e-6)
    assert got[1, 0].item() == pytest.approx(0.2, abs=1e-6)


def test_attention_attribution_rows_sum_to_one_and_is_differentiable(tiny, tokens):
    got = A.attention_attribution(tiny, tokens)
    assert got.shape == (3, 32)
    assert torch.allclose(got.sum(-1), torch.ones(3), atol=1e-5)
    assert (got[torch.arange(32) > eot_of(tokens)[:, None]] == 0).all()
    got.pow(2).sum().backward()
    grad = tiny.transformer.resblocks[0].attn.in_proj_weight.grad
    assert grad is not None and grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------------------------------
# GradCAM (3.2)
# --------------------------------------------------------------------------------------------------


def full_relevance(model, images, tokens, layers=None):
    """Chefer's relevance by hand: the full L x L map R over the layers, R = I, R <- R + E_i R."""
    with A.explicit_attention(model) as record:
        text = model.encode_text(tokens)
    score = (model.logit_scale.exp() * (F.normalize(images, dim=-1) * F.normalize(text, dim=-1)).sum(-1)).sum()
    grads = torch.autograd.grad(score, record)
    R = torch.eye(32).expand(len(tokens), 32, 32)
    maps = []
    for a, g in zip(record, grads):
        E = (g * a.detach()).clamp(min=0).mean(1)
        maps.append(E)
        R = R + torch.bmm(E, R)
    return R, maps


def test_gradcam_equals_the_full_relevance_map_row(tiny, images, tokens):
    got = A.gradcam_attribution(tiny, images, tokens)
    R, _ = full_relevance(tiny, images, tokens)
    eot = eot_of(tokens)
    expected = R[torch.arange(3), eot]
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-5)
    assert (got >= 0).all() and (got[torch.arange(3), eot] >= 1).all()
    assert not got.requires_grad


def test_gradcam_one_layer_is_identity_plus_e(tiny, images, tokens):
    one = copy.deepcopy(tiny)
    one.transformer.resblocks = one.transformer.resblocks[:1]
    got = A.gradcam_attribution(one, images, tokens)
    _, (E,) = full_relevance(one, images, tokens)
    eot = eot_of(tokens)
    expected = F.one_hot(eot, 32).float() + E[torch.arange(3), eot]
    assert torch.allclose(got, expected, atol=1e-6)
    assert (E[torch.arange(3), eot] > 0).any()  # a non-trivial check: E is not all clamped away


def test_gradcam_create_graph_reaches_the_parameters(tiny, images, tokens):
    plain = A.gradcam_attribution(tiny, images, tokens)
    got = A.gradcam_attribution(tiny, images, tokens, create_graph=True)
    assert torch.allclose(got, plain, atol=1e-6)
    got.sum().backward()
    grad = tiny.transformer.resblocks[0].attn.in_proj_weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------------------------------
# gradient (3.4)
# --------------------------------------------------------------------------------------------------


def test_embedding_gradient_matches_finite_differences_in_float64(tiny, images, tokens):
    model = copy.deepcopy(tiny).double()
    img, tok = images[:1].double(), tokens[:1]
    rec = []
    handle = model.token_embedding.register_forward_hook(lambda m, i, out: rec.append(out))
    score = s_of(model, img, tok).sum()
    handle.remove()
    (g,) = torch.autograd.grad(score, rec[0])

    delta = torch.zeros_like(g)
    handle = model.token_embedding.register_forward_hook(lambda m, i, out: out + delta)
    eps, gen = 1e-6, torch.Generator().manual_seed(0)
    coords = [(int(i), int(j)) for i, j in zip(torch.randint(0, 10, (12,), generator=gen),
                                               torch.randint(0, 64, (12,), generator=gen))]
    try:
        with torch.no_grad():
            for i, j in coords:
                delta.zero_()[0, i, j] = eps
                up = s_of(model, img, tok).item()
                delta[0, i, j] = -eps
                down = s_of(model, img, tok).item()
                assert (up - down) / (2 * eps) == pytest.approx(g[0, i, j].item(), rel=1e-5, abs=1e-8)
    finally:
        handle.remove()

    got = A.gradient_attribution(model, img, tok)
    raw = g.abs().sum(-1)
    eot = int(eot_of(tok))
    expected = torch.zeros_like(raw)
    expected[0, : eot + 1] = raw[0, : eot + 1].softmax(-1)
    assert torch.allclose(got, expected, atol=1e-12)


def test_gradient_softmax_over_real_tokens_only_and_differentiable(tiny, images, tokens):
    got = A.gradient_attribution(tiny, images, tokens)
    padding = torch.arange(32) > eot_of(tokens)[:, None]
    assert (got[padding] == 0).all() and (got[~padding] >= 0).all()
    assert torch.allclose(got.sum(-1), torch.ones(3), atol=1e-6)
    # the raw sums are in the hundreds here, so temperature 1 saturates; a softer softmax keeps every token
    soft = A.gradient_attribution(tiny, images, tokens, create_graph=True, temperature=1e4)
    assert (soft[padding] == 0).all() and (soft[~padding] > 0).all()
    assert torch.allclose(soft.sum(-1), torch.ones(3), atol=1e-6)
    with pytest.raises(CAEError, match="temperature"):
        A.gradient_attribution(tiny, images, tokens, temperature=0)
    soft.pow(2).sum().backward()  # second order, through the explicit attention
    grad = tiny.transformer.resblocks[0].attn.in_proj_weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


def test_gradient_methods_work_under_no_grad_on_a_frozen_model(tiny, images, tokens):
    frozen = copy.deepcopy(tiny).requires_grad_(False)
    with torch.no_grad():
        grad = A.gradient_attribution(frozen, images, tokens)
        cam = A.gradcam_attribution(frozen, images, tokens)
    assert torch.allclose(grad, A.gradient_attribution(tiny, images, tokens))
    assert torch.allclose(cam, A.gradcam_attribution(tiny, images, tokens))


# --------------------------------------------------------------------------------------------------
# perturbation (3.3, appendix I)
# --------------------------------------------------------------------------------------------------


def word_positions(texts, spans):
    """Stand-in for the roles module: each test word is one BPE token, 1 + its word index (after SOT)."""
    return [[[1 + text[:start].count(" ")] for start, _, _ in caption] for text, caption in zip(texts, spans)]


def test_perturbation_is_the_mean_drop_at_the_concept_positions(tiny, images, tokenizer, tokens):
    reps = [[tokenizer(["a green cube left of a blue ball", "a small cube left of a blue ball"]),
             tokenizer(["a red cube left of a blue dog"])],
            [],
            [tokenizer(["a small cat on a big red car", "a small car on a big red car",
                        "a small ball on a big red car"])]]
    pos = [[[2], [8]], [], [[3]]]
    got = A.perturbation_attribution(tiny, images, tokens, reps, pos)
    with torch.no_grad():
        s = s_of(tiny, images, tokens)
        expected = torch.zeros(3, 32)
        expected[0, 2] = s[0] - s_of(tiny, images[[0, 0]], reps[0][0]).mean()
        expected[0, 8] = s[0] - s_of(tiny, images[[0]], reps[0][1]).mean()
        expected[2, 3] = s[2] - s_of(tiny, images[[2, 2, 2]], reps[2][0]).mean()
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got[0, 2] != 0) and (got[1] == 0).all()
    got.sum().backward()
    grad = tiny.transformer.resblocks[0].attn.in_proj_weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


def test_perturbation_shared_and_missing_positions(tiny, images, tokens, tokenizer):
    green, dog = tokenizer(["a green cube left of a blue ball"]), tokenizer(["a red cube left of a blue dog"])
    alone = A.perturbation_attribution(tiny, images, tokens, [[green], [], []], [[[2, 3]], [], []])
    other = A.perturbation_attribution(tiny, images, tokens, [[dog], [], []], [[[3, 8]], [], []])
    both = A.perturbation_attribution(tiny, images, tokens, [[green, dog], [], []], [[[2, 3], [3, 8]], [], []])
    assert torch.allclose(both[0, 2], alone[0, 2], atol=1e-6) and torch.allclose(both[0, 8], other[0, 8], atol=1e-6)
    assert torch.allclose(both[0, 3], (alone[0, 3] + other[0, 3]) / 2)  # shared: the mean of the two drops
    sizes = []
    handle = tiny.token_embedding.register_forward_hook(lambda m, i, out: sizes.append(i[0].shape[0]))
    try:
        lost = A.perturbation_attribution(tiny, images, tokens, [[green, dog], [], []], [[[2, 3], []], [], []])
    finally:
        handle.remove()
    assert sizes == [3 + 1]  # the concept without positions (truncated away) is not run
    assert torch.allclose(lost, alone, atol=1e-6)


def test_perturbation_runs_one_forward_pass(tiny, images, tokens, tokenizer):
    texts = CAPTIONS
    spans = [[(2, 5, "attribute"), (11, 15, "relation")], [(2, 7, "attribute")], [(8, 11, "object")]]
    candidates = {"attribute": ["green", "small", "blue", "big"], "relation": ["right", "on", "under"],
                  "object": ["cat", "ball", "cube"]}
    reps, pos = A.perturbations(texts, spans, candidates, tokenizer, word_positions, n_perturb=3, seed=5)
    sizes = []
    handle = tiny.token_embedding.register_forward_hook(lambda m, i, out: sizes.append(i[0].shape[0]))
    try:
        A.perturbation_attribution(tiny, images, tokens, reps, pos)
    finally:
        handle.remove()
    assert sizes == [3 + 4 * 3]


def test_perturbations_replace_the_span_with_other_words_of_its_role(tokenizer):
    texts = ["a red cube left of a blue ball", "a green sphere"]
    spans = [[(2, 5, "attribute"), (6, 10, "object")], [(8, 14, "object")]]
    candidates = {"attribute": ["RED", "red", "yellow"], "object": ["cube", "ball", "cone", "sphere", "disk"]}
    reps, pos = A.perturbations(texts, spans, candidates, tokenizer, word_positions, n_perturb=4, seed=0)
    assert pos == [[[2], [3]], [[3]]]
    # the only attribute other than "red" (any case) is "yellow": every variant is that one caption
    assert torch.equal(reps[0][0], tokenizer(["a yellow cube left of a blue ball"] * 4))
    original = tokenizer(texts)
    for n, caption in enumerate(reps):
        for c, variants in enumerate(caption):
            assert variants.shape == (4, 32)
            p = pos[n][c][0]
            assert (variants[:, p] != original[n, p]).all()  # never the span's own word
            rest = torch.ones(32, dtype=torch.bool)
            rest[p] = False
            assert (variants[:, rest] == original[n, rest]).all()  # single-token words: nothing else moves
    # 4 of the 4 alternatives of "cube", drawn without replacement
    assert sorted(reps[0][1][:, 3].tolist()) == sorted(tokenizer(["ball", "cone", "sphere", "disk"])[:, 1].tolist())
    # seeded per (seed, caption, concept): same seed, same variants, also for a caption alone
    again, _ = A.perturbations(texts, spans, candidates, tokenizer, word_positions, n_perturb=4, seed=0)
    alone, _ = A.perturbations(texts[1:], spans[1:], candidates, tokenizer, word_positions, n_perturb=4, seed=0)
    assert torch.equal(again[1][0], reps[1][0]) and torch.equal(again[0][1], reps[0][1])
    other, _ = A.perturbations(texts, spans, candidates, tokenizer, word_positions, n_perturb=4, seed=1)
    assert not torch.equal(other[1][0], reps[1][0]) or not torch.equal(other[0][1], reps[0][1])
    assert alone[0][0].shape == (4, 32)


def test_perturbation_errors(tiny, images, tokens, tokenizer):
    one = tokenizer(["a green cube left of a blue ball"])
    with pytest.raises(CAEError, match="one entry per caption"):
        A.perturbation_attribution(tiny, images, tokens, [[one]], [[[2]]])
    with pytest.raises(CAEError, match="caption 0: 2 replacement sets but 1 position lists"):
        A.perturbation_attribution(tiny, images, tokens, [[one, one], [], []], [[[2]], [], []])
    with pytest.raises(CAEError, match=r"\[P >= 1, 32\]"):
        A.perturbation_attribution(tiny, images, tokens, [[one[:, :8]], [], []], [[[2]], [], []])
    with pytest.raises(CAEError, match="positions"):
        A.perturbation_attribution(tiny, images, tokens, [[one], [], []], [[[40]], [], []])
    with pytest.raises(CAEError, match="image_features"):
        A.perturbation_attribution(tiny, images[:2], tokens, [[one], [], []], [[[2]], [], []])
    texts, spans = ["a red cube"], [[(2, 5, "attribute")]]
    with pytest.raises(CAEError, match="no candidate words for role 'attribute'"):
        A.perturbations(texts, spans, {"object": ["ball"]}, tokenizer, word_positions)
    with pytest.raises(CAEError, match="differs from 'red'"):
        A.perturbations(texts, spans, {"attribute": ["Red"]}, tokenizer, word_positions)
    with pytest.raises(CAEError, match="not a non-empty span"):
        A.perturbations(texts, [[(5, 20, "attribute")]], {"attribute": ["big"]}, tokenizer, word_positions)
    with pytest.raises(CAEError, match="n_perturb"):
        A.perturbations(texts, spans, {"attribute": ["big"]}, tokenizer, word_positions, n_perturb=0)
    with pytest.raises(CAEError, match="span_positions"):
        A.perturbations(texts, spans, {"attribute": ["big"]}, tokenizer, lambda t, s: [[]])


# --------------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------------


def test_dispatcher_routes_and_refuses(tiny, images, tokens):
    assert A.METHODS == ("attention", "gradcam", "perturbation", "gradient")
    assert torch.equal(A.attribution("gradient", tiny, images, tokens), A.gradient_attribution(tiny, images, tokens))
    assert torch.allclose(A.attribution("attention", tiny, None, tokens), A.attention_attribution(tiny, tokens))
    with pytest.raises(CAEError, match="unknown attribution method 'saliency'"):
        A.attribution("saliency", tiny, images, tokens)
    with pytest.raises(CAEError, match="needs replacements and positions"):
        A.attribution("perturbation", tiny, images, tokens, replacements=[[], [], []])
    with pytest.raises(CAEError, match="needs image_features"):
        A.attribution("gradcam", tiny, None, tokens)


def test_scaled_similarity_is_cosine_over_temperature(tiny, images, tokens):
    with torch.no_grad():
        text = tiny.encode_text(tokens)
        cos = A.similarity(tiny, images, text, scaled=False)
        assert torch.allclose(cos, F.cosine_similarity(images, text, dim=-1), atol=1e-6)
        assert torch.allclose(A.similarity(tiny, images, text), cos * tiny.logit_scale.exp(), atol=1e-5)
        assert torch.allclose(A.similarity(tiny, images, text), s_of(tiny, images, tokens), atol=1e-5)
