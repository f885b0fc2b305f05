"""Patch sampling, MONAI sliding-window inference, and the precision and allocator it runs with."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest
import torch

from spinelab.devices import check_device
from spinelab.errors import SpinelabError
from spinelab.inference import pad_to, random_patch_slices, sliding_window


def test_patches_always_lie_inside_the_volume():
    rng = np.random.default_rng(0)
    shape, patch = (50, 40, 30), (16, 16, 30)
    foreground = np.zeros(shape, bool)
    foreground[0, 0, 0] = foreground[49, 39, 29] = True  # corners: centring must be clipped
    starts = set()
    for _ in range(200):
        slices = random_patch_slices(shape, patch, rng, foreground, foreground_fraction=0.5)
        for part, size, n in zip(slices, patch, shape):
            assert 0 <= part.start and part.stop <= n and part.stop - part.start == size
        starts.add(tuple(part.start for part in slices))
    assert len(starts) > 20  # uniform placements vary


def test_foreground_patches_contain_foreground():
    rng = np.random.default_rng(1)
    shape = (64, 48, 40)
    foreground = np.zeros(shape, bool)
    foreground[5:8, 40:44, 30:33] = True
    foreground[60, 2, 1] = True
    for _ in range(100):
        assert foreground[random_patch_slices(shape, (12, 12, 12), rng, foreground, foreground_fraction=1.0)].any()


def test_empty_foreground_falls_back_to_uniform():
    slices = random_patch_slices((20, 20, 20), (8, 8, 8), np.random.default_rng(2), np.zeros((20, 20, 20), bool), 1.0)
    assert all(part.stop - part.start == 8 for part in slices)


def test_patch_larger_than_volume_asks_for_padding():
    with pytest.raises(SpinelabError, match="pad_to"):
        random_patch_slices((20, 10, 20), (16, 16, 16), np.random.default_rng(0))


def test_pad_to_round_trip():
    array = np.arange(10 * 20 * 5, dtype=np.float32).reshape(10, 20, 5)
    padded, original = pad_to(array, (16, 16, 16), value=-1000)
    assert padded.shape == (16, 20, 16)
    np.testing.assert_array_equal(padded[original], array)
    assert (padded[10:] == -1000).all() and (padded[:, :, 5:] == -1000).all()
    channels = np.stack([array, -array])
    padded, original = pad_to(channels, (16, 16, 16))
    assert padded.shape == (2, 16, 20, 16)
    np.testing.assert_array_equal(padded[original], channels)
    same, _ = pad_to(array, (4, 4, 4))
    assert same is array


def _pointwise(in_channels: int, weights) -> torch.nn.Module:
    """A 1x1x1 convolution with the given (out, in) weights and no bias: output = weights @ input per voxel."""
    conv = torch.nn.Conv3d(in_channels, len(weights), kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights, dtype=torch.float32).reshape(len(weights), in_channels, 1, 1, 1))
        conv.bias.zero_()
    return conv


@pytest.mark.parametrize("shape", [(37, 29, 41), (10, 12, 9), (10, 40, 7)])
def test_identity_network_returns_the_volume(shape):
    volume = np.random.default_rng(0).uniform(0.5, 2.0, shape).astype(np.float32)
    output = sliding_window(_pointwise(1, [[1.0]]), volume, (16, 16, 16), overlap=0.25, batch_size=2)
    assert output.dtype == np.float32 and output.shape == (1, *shape)
    np.testing.assert_allclose(output[0], volume, rtol=1e-2)


def test_output_channels_follow_the_network():
    volume = np.random.default_rng(1).uniform(0.5, 2.0, (20, 18, 24)).astype(np.float32)
    output = sliding_window(_pointwise(1, [[1.0], [-2.0]]), volume, (16, 16, 16))
    assert output.shape == (2, 20, 18, 24)
    np.testing.assert_allclose(output, np.stack([volume, -2 * volume]), rtol=1e-2)


def test_multichannel_input_and_mode_restored():
    volume = np.random.default_rng(2).uniform(0.5, 2.0, (2, 20, 17, 9)).astype(np.float32)
    network = _pointwise(2, [[1.0, 1.0], [1.0, -0.25], [0.0, 3.0]]).train()
    output = sliding_window(network, volume, (8, 8, 8), overlap=0.5)
    expected = np.stack([volume[0] + volume[1], volume[0] - 0.25 * volume[1], 3 * volume[1]])
    assert output.shape == (3, 20, 17, 9)
    np.testing.assert_allclose(output, expected, rtol=1e-2, atol=1e-2)
    assert network.training


class _EdgeArtifacts(torch.nn.Module):
    """Identity inside each patch, +100 on its outer two voxels: what a padded convolution does at patch edges."""

    def forward(self, x):
        out = x + 100.0
        out[..., 2:-2, 2:-2, 2:-2] = x[..., 2:-2, 2:-2, 2:-2]
        return out


def test_a_discarded_border_removes_patch_edge_artifacts_everywhere():
    volume = np.random.default_rng(3).uniform(0.5, 2.0, (37, 29, 41)).astype(np.float32)
    output = sliding_window(_EdgeArtifacts(), volume, (16, 16, 20), border=(4, 4, 5))
    assert output.shape == (1, 37, 29, 41)
    np.testing.assert_allclose(output[0], volume, atol=1e-4)
    blended = sliding_window(_EdgeArtifacts(), volume, (16, 16, 20), overlap=0.5)
    assert np.abs(blended[0] - volume).max() > 1.0  # Gaussian blending alone keeps some of them


def test_sliding_window_rejects_wrong_dimensions():
    with pytest.raises(SpinelabError, match="channels-first"):
        sliding_window(_pointwise(1, [[1.0]]), np.zeros((8, 8)), (8, 8, 8))


class _Recorder(torch.nn.Module):
    """Identity convolution that notes the conditions it ran under."""

    def __init__(self):
        super().__init__()
        self.conv = _pointwise(1, [[1.0]])
        self.seen: list[tuple[torch.dtype, bool, bool]] = []

    def forward(self, patches):
        out = self.conv(patches)
        self.seen.append((out.dtype, torch.is_inference_mode_enabled(), self.training))
        return out


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_runs_in_the_chosen_precision_inference_mode_and_eval(monkeypatch, precision, dtype):
    monkeypatch.setenv("SPINELAB_PRECISION", precision)
    network = _Recorder()
    sliding_window(network, np.ones((20, 20, 20), np.float32), (16, 16, 16), progress=True)
    assert len(network.seen) == 8  # 2 windows per axis
    assert set(network.seen) == {(dtype, True, False)}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's")
def test_a_freed_large_buffer_is_reused_instead_of_faulted_in_again():
    """Before every training and inference run, freed buffers above glibc's 32 MB mmap threshold stay
    in the heap: the next buffer of that size costs no page faults (here 544 when mapped afresh, with
    transparent huge pages; 16,384 without)."""
    check_device("cpu")

    def page_faults_of_a_64_mb_buffer() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = np.ones(8 * 2**20)  # writes every page
        del buffer
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    page_faults_of_a_64_mb_buffer()
    assert page_faults_of_a_64_mb_buffer() < 100
