"""CLS attention (paper A section 4.1, Fig. 3): mask-to-patch mapping, capture, rollout and the per-object table."""

import numpy as np
import pandas as pd
import pytest
import torch

from clipscope_utils import attention as A
from clipscope_utils.attention import AttentionError
from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils.models.registry import load_model


@pytest.fixture(scope="module")
def tiny(module_cache):
    torch.manual_seed(0)
    return load_model("random:clipscope-tiny", device="cpu")  # ViT, 64 px, patch 8: an 8 x 8 grid


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    spec = SceneSpec(family="comco", objects=(3,), images=6, image_size=32, seed=2)
    return generate(spec, tmp_path_factory.mktemp("ds") / "d", workers=1, progress=False)


# --------------------------------------------------------------------------------------------------
# summing attention inside masks
# --------------------------------------------------------------------------------------------------


def test_object_attention_sums_attention_times_covered_share() -> None:
    attn = np.array([0.1, 0.2, 0.3, 0.4])  # a 2 x 2 grid
    coverage = np.array([[1.0, 0.5, 0.0, 0.0],   # one full patch and half of another
                         [0.0, 0.0, 0.0, 0.25]])  # a quarter of the last patch
    res = A.object_attention(attn, coverage)
    np.testing.assert_allclose(res["attention"], [0.1 + 0.5 * 0.2, 0.25 * 0.4])
    np.testing.assert_allclose(res["area_share"], [1.5 / 4, 0.25 / 4])
    np.testing.assert_allclose(res["attention_per_area"], [0.2 / 0.375, 0.1 / 0.0625])
    # uniform attention gives every object exactly its area share: per-area 1
    uni = A.object_attention(np.full(4, 0.25), coverage)
    np.testing.assert_allclose(uni["attention"], uni["area_share"])
    np.testing.assert_allclose(uni["attention_per_area"], [1.0, 1.0])
    # several variants at once, and an object covering nothing gets NaN per area
    both = A.object_attention(np.stack([attn, attn[::-1]]), np.vstack([coverage, np.zeros(4)]))
    assert both["attention"].shape == (2, 3)
    np.testing.assert_allclose(both["attention"][1, :2], [0.4 + 0.5 * 0.3, 0.25 * 0.1])
    assert np.isnan(both["attention_per_area"][0, 2])


def test_patch_masks_downsample_with_partial_patches() -> None:
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[0:6, 0:4] = 1  # patch (0, 0) fully, patch (1, 0) half (rows 4..5 of 4..7)
    mask[15, 15] = 2    # one pixel of the 16 of patch (3, 3)
    cov = A.patch_masks(mask, grid=4, image_size=8)  # 16 px -> 8 px, 2 px patches = 4 x 4 dataset pixels
    assert cov.shape == (2, 16)
    expected = np.zeros((2, 4, 4))
    expected[0, 0, 0], expected[0, 1, 0], expected[1, 3, 3] = 1.0, 0.5, 1 / 16
    np.testing.assert_allclose(cov, expected.reshape(2, 16))
    # a non-integer ratio: 6 px -> 4 px on a 2 x 2 grid, each patch is 3 x 3 dataset pixels
    tiny = np.zeros((6, 6), dtype=np.uint8)
    tiny[0, 0] = 1
    tiny[2:4, 2:4] = 2  # one pixel in each of the four patches
    cov = A.patch_masks(tiny, grid=2, image_size=4)
    np.testing.assert_allclose(cov, [[1 / 9, 0, 0, 0], [1 / 9] * 4])
    # upsampling 4 px -> 8 px on a 4 x 4 grid: each patch is one dataset pixel, coverage = the mask itself
    up = (np.arange(16).reshape(4, 4) % 3 == 0).astype(np.uint8)
    np.testing.assert_allclose(A.patch_masks(up, grid=4, image_size=8)[0], up.ravel())


def test_attention_summed_inside_a_mask_through_the_resize() -> None:
    """End to end on a hand-made label map: 16 px mask, model input 8 px, 2 x 2 grid (patch = 8 x 8 dataset px)."""
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[0:8, 0:8] = 1    # the whole top-left patch: large
    mask[8:12, 8:16] = 2  # half of the bottom-right patch: small
    attn = np.array([0.4, 0.1, 0.2, 0.3])
    res = A.object_attention(attn, A.patch_masks(mask, grid=2, image_size=8))
    np.testing.assert_allclose(res["attention"], [0.4, 0.15])
    np.testing.assert_allclose(res["area_share"], [0.25, 0.125])
    np.testing.assert_allclose(res["attention_per_area"], [1.6, 1.2])


def test_patch_masks_account_for_the_centre_crop_of_non_square_images() -> None:
    mask = np.zeros((8, 12), dtype=np.uint8)  # H x W; resize of the short side keeps 8 x 12, crop drops 2 px each side
    mask[:, 0:2] = 1      # cropped away entirely
    mask[0:4, 2:6] = 2    # exactly patch (0, 0) of the crop
    mask[:, 10:12] = 3    # cropped away on the right
    cov = A.patch_masks(mask, grid=2, image_size=8, n_objects=3)
    np.testing.assert_allclose(cov, [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    # 'squash' resizes both sides instead: object 1 is now a sixth of the width of the left patches
    sq = A.patch_masks(mask, grid=2, image_size=8, n_objects=3, resize_mode="squash")
    np.testing.assert_allclose(sq[0], [2 / 6, 0, 2 / 6, 0])
    # against a brute-force nearest upsample + crop + block mean (8 x 12 -> 16 x 24, crop columns 4..19)
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, size=(8, 12)).astype(np.uint8)
    cov = A.patch_masks(label, grid=4, image_size=16, n_objects=2)
    big = np.kron(label, np.ones((2, 2), dtype=np.uint8))[:, 4:20]
    for k in (1, 2):
        brute = (big == k).reshape(4, 4, 4, 4).mean(axis=(1, 3)).ravel()
        np.testing.assert_allclose(cov[k - 1], brute)


def test_mask_and_grid_mismatches_are_refused_clearly() -> None:
    with pytest.raises(AttentionError, match=r"mask is 8x8 \(HxW\) but its image is 8x9"):
        A.patch_masks(np.zeros((8, 8)), grid=2, image_size=8, image_hw=(8, 9))
    with pytest.raises(AttentionError, match="not a whole number of patches"):
        A.patch_masks(np.zeros((8, 8)), grid=3, image_size=8)
    with pytest.raises(AttentionError, match="attention has 4 patches but the coverage has 9"):
        A.object_attention(np.full(4, 0.25), np.zeros((1, 9)))
    with pytest.raises(AttentionError, match="non-square images under resize mode 'longest'"):
        A.patch_masks(np.zeros((8, 12)), grid=2, image_size=8, resize_mode="longest")


# --------------------------------------------------------------------------------------------------
# capture and rollout
# --------------------------------------------------------------------------------------------------


def test_capture_rows_are_distributions_and_the_embedding_is_unchanged(tiny) -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 3, 64, 64)
    reference = tiny.encode_images(x)
    maps = A.capture_attention(tiny, x)
    assert maps.grid == (8, 8) and maps.n_patches == 64
    assert maps.layers.shape == (3, 4, 65, 65)  # B, layers, 1 CLS + 64 patches, same
    assert maps.cls_heads.shape == (3, 4, 2, 65)  # width 64 / head width 32 = 2 heads
    torch.testing.assert_close(maps.layers.sum(-1), torch.ones(3, 4, 65))
    torch.testing.assert_close(maps.cls_heads.mean(2), maps.layers[:, :, 0, :])
    assert torch.equal(maps.embedding, reference)
    # the hooks are gone: the model runs exactly as before
    visual = A.vision_transformer(tiny)
    assert all(not blk.attn._forward_hooks for blk in visual.transformer.resblocks)
    assert torch.equal(tiny.encode_images(x), reference)
    cls = A.cls_attention(tiny.model, x)  # the bare CLIP model works as well as the Encoder
    assert cls.shape == (3, 4, 64)
    torch.testing.assert_close(cls, maps.layers[:, :, 0, 1:])
    assert bool((cls.sum(-1) < 1).all())  # the rest is the CLS token's attention to itself
    for variant in ("last", "rollout", 0):
        torch.testing.assert_close(maps.cls_patches(variant).sum(-1), torch.ones(3))


def test_captured_weights_are_the_blocks_softmax_attention(tiny) -> None:
    """Recompute block 1's attention by hand (LN, in-projection, softmax(QK^T / sqrt(d))) and compare per head."""
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    maps = A.capture_attention(tiny, x)
    visual = A.vision_transformer(tiny)
    blk = visual.transformer.resblocks[0]
    with torch.no_grad():
        h = blk.ln_1(visual._embeds(x))
        q, k, _ = torch.nn.functional.linear(h, blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, dim=-1)
        heads, d = blk.attn.num_heads, h.shape[-1] // blk.attn.num_heads
        q, k = (t.reshape(2, -1, heads, d).transpose(1, 2) for t in (q, k))
        w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)  # (B, heads, T, T)
    torch.testing.assert_close(maps.cls_heads[:, 0], w[:, :, 0, :], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(maps.layers[:, 0], w.mean(1), atol=1e-5, rtol=1e-4)


def test_capture_refuses_images_of_the_wrong_size(tiny) -> None:
    with pytest.raises(AttentionError, match=r"images are \(32, 32\) px but the model's input is \(64, 64\) px"):
        A.capture_attention(tiny, torch.zeros(1, 3, 32, 32))


def test_rollout_of_identity_attention_is_the_identity_and_multiplies_in_layer_order() -> None:
    eye = torch.eye(5).expand(2, 3, 5, 5)  # B = 2, three layers of pure self-attention
    torch.testing.assert_close(A.attention_rollout(eye), torch.eye(5).expand(2, 5, 5))
    rng = np.random.default_rng(0)
    layers = torch.tensor(rng.dirichlet(np.ones(4), size=(2, 4)), dtype=torch.float64)  # (L=2, T=4, T=4)
    hat = [0.5 * layers[i] + 0.5 * torch.eye(4, dtype=torch.float64) for i in range(2)]
    out = A.attention_rollout(layers)
    torch.testing.assert_close(out, hat[1] @ hat[0])
    assert not torch.allclose(out, hat[0] @ hat[1])  # the order matters and is last @ ... @ first
    torch.testing.assert_close(out.sum(-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(A.attention_rollout(layers, residual=0.0), layers[1] @ layers[0])


def _vit(**kw):
    from open_clip.transformer import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, width=32, layers=1, heads=2, mlp_ratio=2.0,
                             output_dim=16, **kw)


def test_models_without_a_cls_token_or_not_vits_are_refused() -> None:
    from open_clip.modified_resnet import ModifiedResNet

    with pytest.raises(AttentionError, match="convolutional ResNet tower has no patch tokens"):
        A.vision_transformer(ModifiedResNet(layers=[1, 1, 1, 1], output_dim=16, heads=2, image_size=32, width=8))
    with pytest.raises(AttentionError, match=r"pool_type='avg' \(global average pool"):
        A.capture_attention(_vit(pool_type="avg"), torch.zeros(1, 3, 32, 32))
    with pytest.raises(AttentionError, match="attentional pooler"):
        A.vision_transformer(_vit(attentional_pool=True, attn_pooler_queries=4))
    with pytest.raises(AttentionError, match="do not use nn.MultiheadAttention"):
        A.vision_transformer(_vit(qk_norm=True))

    class TextOnly:
        name, has_images = "GloVe", False

    with pytest.raises(AttentionError, match="'GloVe' is text-only"):
        A.vision_transformer(TextOnly())
    # a plain CLS-token ViT is accepted, bare
    maps = A.capture_attention(_vit().eval(), torch.zeros(2, 3, 32, 32))
    assert maps.layers.shape == (2, 1, 17, 17)


# --------------------------------------------------------------------------------------------------
# the per-object table
# --------------------------------------------------------------------------------------------------


def test_attention_table_on_generated_scenes(tiny, scenes) -> None:
    frame = A.attention_table(tiny, scenes, n_images=4, seed=3, batch_size=3, progress=False)
    ids = A.choose_images(scenes, 4, seed=3)
    assert ids == A.choose_images(scenes, 4, seed=3) and len(set(ids)) == 4
    assert list(frame.columns) == A.TABLE_COLUMNS
    assert sorted(frame.image_id.unique()) == sorted(ids)
    # per image: 3 objects x (last, rollout, 4 layers)
    assert len(frame) == 4 * 3 * 6
    assert (frame.groupby(["image_id", "variant", "layer"], dropna=False).size() == 3).all()
    assert set(frame.variant) == {"last", "rollout", "layer"}
    assert (frame.groupby(["image_id", "variant", "layer"], dropna=False).is_large.sum() == 1).all()
    # the 32 px masks are resized to the 64 px input: the area share is the mask's pixel share exactly
    objects = scenes.objects.set_index(["image_id", "object_index"])
    px = objects.loc[list(zip(frame.image_id, frame.object_index)), "area_px"].to_numpy()
    np.testing.assert_allclose(frame.area_share, px / (32 * 32))
    # shares of the CLS attention to patches: objects together get at most all of it
    assert (frame.groupby(["image_id", "variant", "layer"], dropna=False).attention.sum() <= 1 + 1e-9).all()
    np.testing.assert_allclose(frame.attention_per_area, frame.attention / frame.area_share)
    last = frame[frame.variant == "last"]
    np.testing.assert_allclose(last.attention.to_numpy(), frame[(frame.variant == "layer") & (frame.layer == 4)]
                               .attention.to_numpy())
    assert ((frame.to_patches > 0) & (frame.to_patches <= 1)).all()
    # boxes contain the masks
    boxes = A.attention_table(tiny, scenes, n_images=4, seed=3, region="box", per_layer=False, progress=False)
    assert (boxes.area_share.to_numpy() >= frame[frame.variant != "layer"].area_share.to_numpy() - 1e-12).all()
    with pytest.raises(AttentionError, match="n_images=7 but the dataset has 6"):
        A.choose_images(scenes, 7)


def test_role_table_and_paired_difference_on_a_constructed_frame() -> None:
    rows = []
    for i, (big, s1, s2) in enumerate([(0.5, 0.1, 0.1), (0.3, 0.2, 0.0), (0.4, 0.1, 0.3)]):
        for k, (att, area, large) in enumerate([(big, 0.25, True), (s1, 0.05, False), (s2, 0.05, False)]):
            rows.append({"model": "m", "image_id": f"i{i}", "object_index": k, "is_large": large,
                         "role": "large" if large else f"small {k}", "variant": "last", "layer": 2.0,
                         "area_share": area, "attention": att, "attention_per_area": att / area})
    frame = pd.DataFrame(rows)
    roles = A.role_table(frame, n_boot=50)
    assert list(dict.fromkeys(roles.role)) == ["large", "small 1", "small 2", "small (mean)"]
    get = roles.set_index(["role", "measure"])
    assert get.loc[("large", "attention"), "rate"] == pytest.approx(0.4)
    assert get.loc[("small (mean)", "attention"), "rate"] == pytest.approx(np.mean([0.1, 0.1, 0.2]))  # per image first
    assert (roles.n == 3).all() and (roles.ci_low <= roles.rate + 1e-12).all()
    diff = A.paired_difference(frame, n_boot=50).set_index("measure")
    assert diff.loc["attention", "rate"] == pytest.approx(np.mean([0.4, 0.2, 0.2]))
    assert diff.loc["area_share", "rate"] == pytest.approx(0.2)
    table = A.summary_table(roles, A.paired_difference(frame, n_boot=50))
    row = table.iloc[0]
    assert (row.model, row.variant, row.n) == ("m", "last", 3) and row["attention verdict"] == "large gets more"
