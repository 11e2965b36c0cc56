"""Features equal pytorch-fid's own pipeline on the same files (random weights of the real architecture)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.scoring import FeatureExtractor
from tests.utils.competition import random_images


@pytest.fixture
def png_files(tmp_path):
    paths = []
    for i, image in enumerate(random_images(3, seed=7)):
        path = tmp_path / f"{i:03d}.png"
        Image.fromarray(image, mode="L").save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pytorch_fid_activations(random_torch_home, tmp_path_factory):
    """pytorch-fid's own get_activations on the same three PNGs (written again in a module-wide folder)."""
    from pytorch_fid.fid_score import get_activations
    from pytorch_fid.inception import InceptionV3

    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i, image in enumerate(random_images(3, seed=7)):
        Image.fromarray(image, mode="L").save(folder / f"{i:03d}.png")
        paths.append(folder / f"{i:03d}.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(random_torch_home))
        model = InceptionV3([3]).eval()  # pytorch-fid's own loader finds the weights in TORCH_HOME
        return get_activations([str(p) for p in paths], model, batch_size=2, dims=2048, device="cpu", num_workers=0)


# torch: pytorch-fid's own module on the same tensors; onnxruntime: fused kernels reorder float sums (~1e-5)
@pytest.mark.parametrize(("engine", "tolerance"), [("torch", 1e-6), ("onnxruntime", 1e-4)])
def test_features_equal_pytorch_fid_get_activations(random_weights, png_files, pytorch_fid_activations, engine,
                                                    tolerance):
    expected = pytorch_fid_activations
    extractor = FeatureExtractor(device="cpu", batch_size=2, decode_threads=2, engine=engine)
    ours = extractor.features_of_files(png_files)
    assert ours.dtype == np.float64 and ours.shape == (3, 2048)
    assert np.abs(ours - expected).max() <= tolerance * np.abs(expected).max()
    assert np.abs(ours).max() > 1e-3  # the features are not trivially zero

    # decoded arrays go through the identical tensors (convert('RGB') of L repeats the channel)
    arrays = np.stack([np.asarray(Image.open(p)) for p in png_files])
    np.testing.assert_array_equal(extractor.features_of_arrays(arrays), ours)


def test_fp16_needs_cuda():
    with pytest.raises(ValueError, match="fp16"):
        FeatureExtractor(device="cpu", precision="fp16")


def test_rejects_non_uint8_arrays(random_weights):
    with pytest.raises(ValueError, match="uint8"):
        FeatureExtractor(device="cpu").features_of_arrays(np.zeros((2, 8, 8), dtype=np.float32))
