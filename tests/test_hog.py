"""MaskFeat's HOG target (pretrain/hog.py): SlowFast's HOGLayerC behaviour, checked on
images whose gradients are known: flat, edges, ramps at known angles, rotations."""
import math

import pytest
import torch

from d2backbones.pretrain import HOGTarget, build_target
from d2backbones.pretrain.hog import sobel_gradients


def ramp(edge_degrees, size=32):
    """A linear ramp whose edges (isophotes) run at ``edge_degrees`` counter-clockwise from
    horizontal, y up: the gradient points at ``edge_degrees - 90``."""
    gradient = math.radians(edge_degrees - 90)
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                indexing="ij")
    # Rows grow downwards: y up is -row.
    image = cols * math.cos(gradient) - rows * math.sin(gradient)
    return image.expand(1, 3, -1, -1).contiguous()


def test_constant_image_gives_a_zero_histogram():
    hog = HOGTarget(16, gaussian_window=16)
    assert torch.equal(hog(torch.full((2, 3, 32, 32), 0.7)), torch.zeros(2, 4, 108))


def test_vertical_edge_votes_into_the_middle_bin_and_a_horizontal_one_into_bin_0():
    hog = HOGTarget(8)
    image = torch.zeros(1, 3, 32, 32)
    image[..., 12:] = 1.0
    cells = hog.cell_histograms(image)
    # The edge lies between columns 11 and 12, inside cell column 1; cells 0, 2, 3 are flat.
    assert not cells[..., [0, 2, 3]].any()
    edge = cells[..., 1]
    assert torch.allclose(edge[:, :, 4], torch.ones(1, 3, 4)) and edge[:, :, [0, 1, 2, 3, 5, 6, 7, 8]].sum() == 0
    # Bright above, dark below (and the other way up): bin 0.
    for horizontal in (image.transpose(-1, -2), 1 - image.transpose(-1, -2)):
        cells = hog.cell_histograms(horizontal)[..., 1, :]
        assert torch.allclose(cells[:, :, 0], torch.ones(1, 3, 4)) and cells[:, :, 1:].sum() == 0


def test_each_non_empty_cell_has_unit_norm_over_its_bins():
    image = torch.randn(2, 3, 32, 32)
    # Flat beyond the first cell's edge too, so that its gradients are all zero.
    image[0, :, :10, :10] = 0.3
    cells = HOGTarget(16, gaussian_window=16).cell_histograms(image)
    norms = cells.norm(dim=2)
    empty = cells.abs().sum(dim=2) == 0
    assert empty[0, :, 0, 0].all() and empty.sum() == 3
    assert torch.allclose(norms[~empty], torch.ones_like(norms[~empty]), atol=1e-5)


@pytest.mark.parametrize("edge_degrees", [5, 35, 65, 115, 145])
def test_a_ramp_votes_into_the_bin_of_its_edge_angle_and_a_quarter_turn_adds_90_degrees(edge_degrees):
    hog = HOGTarget(8)
    image = ramp(edge_degrees)
    # Interior cells only: the reflect padding bends the ramp at the border pixels.
    before = hog.cell_histograms(image)[..., 1:3, 1:3]
    after = hog.cell_histograms(torch.rot90(image, 1, dims=(-2, -1)))[..., 1:3, 1:3]
    for cells, degrees in ((before, edge_degrees), (after, (edge_degrees + 90) % 180)):
        expected = torch.zeros(9)
        expected[int(degrees // 20)] = 1.0
        assert torch.allclose(cells.permute(0, 1, 3, 4, 2), expected.expand_as(cells.permute(0, 1, 3, 4, 2)),
                              atol=1e-5), degrees


def test_a_quarter_turn_of_any_image_moves_all_energy_by_90_degrees():
    # 18 bins of 10 degrees: a quarter turn is exactly half of them.
    hog = HOGTarget(16, nbins=18, gaussian_window=16)
    image = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 66, 66), 3, stride=1)[..., :64, :64]
    before = hog.cell_histograms(image)
    after = hog.cell_histograms(torch.rot90(image, 1, dims=(-2, -1)))
    # The cells move with the image; the energy of each bin moves 9 bins on.
    expected = torch.rot90(before, 1, dims=(-2, -1)).roll(9, dims=2)
    assert torch.allclose(after, expected, atol=1e-5)
    assert not torch.allclose(after, torch.rot90(before, 1, dims=(-2, -1)), atol=1e-2)


def test_per_patch_layout_is_maskfeats_and_holds_no_state():
    hog = build_target("hog", 16)
    assert hog.dim == 2 * 2 * 3 * 9 == 108
    assert hog.state_dict() == {}
    image = torch.randn(2, 3, 32, 48)
    cells = hog.cell_histograms(image)
    patches = hog(image)
    assert patches.shape == (2, 6, 108)
    # Patch (0, 1) holds cells rows 0-1, columns 2-3: (cell row, cell column, channel, bin).
    assert torch.equal(patches[0, 1].view(2, 2, 3, 9), cells[0, :, :, 0:2, 2:4].permute(2, 3, 0, 1))
    assert torch.equal(hog.to_cells(patches, (2, 3)), cells)


def test_gaussian_window_weights_the_votes_and_must_tile_the_image():
    image = torch.randn(1, 3, 32, 32)
    plain, windowed = HOGTarget(16).cell_histograms(image), HOGTarget(16, gaussian_window=16).cell_histograms(image)
    assert not torch.allclose(plain, windowed)
    with pytest.raises(ValueError, match="gaussian_window"):
        HOGTarget(8, gaussian_window=16)(torch.randn(1, 3, 24, 24))
    with pytest.raises(ValueError, match="cell_size"):
        HOGTarget(12)


def test_separable_sobel_is_slowfasts_3x3_kernels():
    image = torch.randn(2, 3, 16, 20, dtype=torch.float64)
    kernel_x = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    kernels = torch.stack([kernel_x, kernel_x.t()])[:, None].repeat(3, 1, 1, 1)
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1), mode="reflect")
    expected = torch.nn.functional.conv2d(padded, kernels, groups=3).view(2, 3, 2, 16, 20)
    gx, gy = sobel_gradients(image)
    assert torch.allclose(gx, expected[:, :, 0]) and torch.allclose(gy, expected[:, :, 1])
