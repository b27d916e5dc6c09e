"""Batch augmentation and test-time views: shapes, exactness of whole-pixel moves, and what the recipes store."""

import pytest
import torch

from digitkit.data.registry import Augment, get_dataset
from digitkit.data.transforms import augment, cutout, shifted
from digitkit.tasks.image import augmented_logits, tta_views
from digitkit.training.loop import pick_precision


def test_shifted_moves_whole_pixels_and_reflects_the_edge():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    down_right = shifted(x, 1, 1)
    assert torch.equal(down_right[0, 0, 1:, 1:], x[0, 0, :3, :3])
    assert torch.equal(down_right[0, 0, 0, 1:], x[0, 0, 1, :3])  # the row brought in mirrors the first row's neighbour
    assert torch.equal(shifted(x, -1, -1)[0, 0, :3, :3], x[0, 0, 1:, 1:])
    assert torch.equal(shifted(x, 0, 0), x)


def test_cutout_blanks_one_square_per_image_with_the_mean_colour():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    out = cutout(x, 8)
    changed = (out != x).any(1)  # [B, H, W]
    per_image = changed.flatten(1).sum(1)
    assert per_image.max() <= 64 and per_image.float().mean() > 20  # at most 8x8, clipped at the edges
    fill = x.mean(dim=(0, 2, 3))
    b, r, c = changed.nonzero()[0]
    assert torch.allclose(out[b, :, r, c], fill)


def test_cifar_augment_keeps_shape_and_range():
    spec = get_dataset("cifar10").augment
    assert spec.padding == "reflection" and spec.cutout == 16 and spec.hflip
    torch.manual_seed(1)
    x = torch.rand(16, 3, 32, 32)
    out = augment(x, spec)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    assert torch.equal(augment(x, Augment()), x)


def test_tta_averages_views_and_only_mirrors_when_training_did():
    assert tta_views(True) == ["flip", "shift"] and tta_views(False) == ["shift"]

    class Column(torch.nn.Module):  # logits = mean of the left column: changes under flips and shifts
        def forward(self, x):
            return x[:, 0, :, 0].mean(1, keepdim=True).repeat(1, 2)

    x = torch.rand(3, 1, 8, 8)
    net = Column()
    assert torch.allclose(augmented_logits(net, x), net(x))
    both = (net(x) + net(x.flip(3))) / 2
    assert torch.allclose(augmented_logits(net, x, ["flip"]), both)
    shifts = (net(x) + net(shifted(x, -1, -1)) + net(shifted(x, 1, 1))) / 3
    assert torch.allclose(augmented_logits(net, x, ["shift"]), shifts)


def test_auto_precision_uses_bf16_for_conv_nets_only_on_cpus_with_bf16_instructions(monkeypatch):
    from digitkit.training import loop

    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda: True)
    assert pick_precision("auto", cpu, convolutional=True).dtype == torch.bfloat16
    assert pick_precision("auto", cpu, convolutional=False).dtype is None
    assert pick_precision("fp32", cpu, convolutional=True).dtype is None
    monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda: False)
    assert pick_precision("auto", cpu, convolutional=True).dtype is None


@pytest.mark.parametrize("amx, avx512_bf16, fast", [(True, False, True), (False, True, True), (False, False, False)])
def test_fast_bf16_means_amx_tiles_or_avx512_bf16(monkeypatch, amx, avx512_bf16, fast):
    from digitkit.training import loop

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert loop.cpu_has_fast_bf16() is fast


def test_fast_bf16_probe_that_fails_counts_as_absent(monkeypatch):
    from digitkit.training import loop

    def broken() -> bool:
        raise RuntimeError("cpuinfo unavailable")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert loop.cpu_has_fast_bf16() is False
