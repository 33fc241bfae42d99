"""NYUD2-DIR data: files, depth decoding, buckets, paired transforms, balanced mask, evaluation."""

import os

import ml_collections
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from dirjax.data import nyud2
import fixtures_nyud2 as fx


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return fx.make_nyud2(str(tmp_path_factory.mktemp("nyud2")))


def _config(data_dir, min_depth=0.0, color=True):
  return ml_collections.ConfigDict({"name": "nyud2_dir", "data_dir": data_dir, "loss_min_depth": min_depth,
                                    "color_augment": color})


# ------------------------------------------------------------------------- reference constants


def test_train_bucket_num_matches_spec():
  counts = np.asarray(nyud2.TRAIN_BUCKET_NUM)
  assert counts.shape == (100,)
  assert counts.sum() == 50688 * 228 * 304 == 3_513_286_656  # `TRAIN_BUCKET_NUM`: full crops, all images
  assert np.all(counts[:7] == 0)
  assert counts.argmax() == 21 and counts.max() == 146_133_612
  assert counts[counts > 0].min() == 1_132_666 == counts[99]


@pytest.mark.parametrize("reweight,lds,expected", [
  ("inverse", False, {7: 1.4615, 21: 0.2585, 50: 1.7424, 99: 33.35, 0: 1.4615}),
  ("inverse", True, {7: 1.2461, 21: 0.3042, 50: 1.6599, 99: 18.74}),
  ("sqrt_inv", False, {7: 1.4471, 99: 6.913}),
  ("sqrt_inv", True, {7: 1.3359, 99: 5.286}),
])
def test_bucket_weight_table_matches_spec(reweight, lds, expected):
  table = nyud2.bucket_weight_table(reweight, lds)
  for bucket, value in expected.items():  # DIR `nyud2-dir/loaddata.py` weights (4 significant digits)
    assert table[bucket] == pytest.approx(value, rel=5e-4)
  assert np.all(table[:7] == table[7])


def test_bucket_weight_table_none():
  assert nyud2.bucket_weight_table("none") is None


def test_synthetic_train_labels_gmm_count_and_histogram():
  labels = nyud2.synthetic_train_labels()
  assert labels.size == 3644  # what BalancedMSE `nyud2-dir/preprocess_gmm.py` builds
  counts = np.asarray(nyud2.TRAIN_BUCKET_NUM, np.int64)
  counts[:7] = counts[7]
  hist = np.bincount(nyud2.BINNING.index(labels), minlength=100)
  np.testing.assert_array_equal(hist, counts // 1_000_000)


def test_binning_equals_reference_rule():
  rng = np.random.default_rng(0)
  depths = np.concatenate([rng.uniform(0, 12, 5000), np.arange(256) / 255 * 10, np.arange(0, 10.01, 0.1),
                           np.arange(0, 10001) / 1000]).astype(np.float32)
  reference = np.array([min(int(d * np.float32(10)), 99) for d in depths])  # loaddata.get_bin_idx
  np.testing.assert_array_equal(nyud2.BINNING.index(depths), reference)


# ------------------------------------------------------------------------------- file reading


def test_read_csv_drops_first_component(tmp_path):
  csv = tmp_path / "x.csv"
  csv.write_text("data/nyu2_train/a/1.jpg,data/nyu2_train/a/1.png\n")
  assert nyud2.read_csv(str(csv), "/root/nyu") == [("/root/nyu/nyu2_train/a/1.jpg", "/root/nyu/nyu2_train/a/1.png")]


def test_real_fds_subset_csv(shared_data_dir):
  rows = nyud2.read_csv(os.path.join(shared_data_dir, "nyud2-dir", "nyu2_train_FDS_subset.csv"), "/d")
  assert len(rows) == 600 and len({img for img, _ in rows}) == 600
  assert all(img.startswith("/d/nyu2_train/") and img.endswith(".jpg") and dep.endswith(".png") for img, dep in rows)


def test_decode_depth_8_and_16_bit(tmp_path):
  codes8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
  Image.fromarray(codes8, mode="L").save(tmp_path / "d8.png")
  mm = (np.arange(256, dtype=np.uint16) * 40).reshape(16, 16)
  Image.fromarray(mm).save(tmp_path / "d16.png")
  # Scale(240) of a 16×16 map is nearest-upsampling; compare against PIL's own nearest resize.
  raw8 = nyud2.load_depth_code(str(tmp_path / "d8.png"), sixteen_bit=False)
  np.testing.assert_array_equal(raw8, np.asarray(Image.fromarray(codes8).resize((240, 240), Image.NEAREST)))
  np.testing.assert_allclose(nyud2.decode_depth(codes8), codes8 / 255 * 10, rtol=1e-6)
  raw16 = nyud2.load_depth_code(str(tmp_path / "d16.png"), sixteen_bit=True)
  assert raw16.dtype == np.uint16 and raw16.max() == 255 * 40
  np.testing.assert_allclose(nyud2.decode_depth(mm), mm / 1000, rtol=1e-6)


def test_depth_bit_depth_mismatch_is_an_error(tmp_path):
  Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "d16.png")
  Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(tmp_path / "d8.png")
  with pytest.raises(ValueError, match="8-bit.*d16.png|d16.png.*8-bit"):
    nyud2.load_depth_code(str(tmp_path / "d16.png"), sixteen_bit=False)
  with pytest.raises(ValueError, match="16-bit"):
    nyud2.load_depth_code(str(tmp_path / "d8.png"), sixteen_bit=True)
  with pytest.raises(TypeError, match="uint8"):
    nyud2.decode_depth(np.zeros(3, np.float32))


def test_missing_and_corrupt_files(tmp_path, data_dir):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    nyud2.prepare(str(tmp_path / "nope"))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match="nyu2_train.csv.*nyu2_test.csv.*FDS_subset"):
    nyud2.prepare(str(empty))
  bad = tmp_path / "bad.jpg"
  bad.write_bytes(b"not a jpeg")
  with pytest.raises(ValueError, match="bad.jpg"):
    nyud2.load_image(str(bad))
  with pytest.raises(FileNotFoundError, match="ghost.jpg"):
    nyud2.load_image(str(tmp_path / "ghost.jpg"))


def test_prepare_names_missing_image(tmp_path):
  root = fx.make_nyud2(str(tmp_path / "nyu"), n_train=2, n_test=1, n_fds=1, size=(320, 240))
  os.remove(os.path.join(root, "nyu2_train", "scene_0001_out", "1.jpg"))
  with pytest.raises(FileNotFoundError, match="1 NYUD2-DIR .*scene_0001_out/1.jpg"):
    nyud2.prepare(root)


# ------------------------------------------------------------------------------- transforms


def test_augment_keeps_image_and_depth_aligned():
  """Red channel == depth code: after flip/rotate/crop both must still agree pixel for pixel."""
  yy, xx = np.mgrid[0:240, 0:320]
  code = np.clip(xx * 0.6 + yy * 0.3, 0, 255).astype(np.uint8)  # asymmetric ramp: a flip shows
  image = np.repeat(code[..., None], 3, axis=-1)
  flips = 0
  for seed in range(6):
    img, depth = nyud2.augment_pair(image, code, np.random.default_rng(seed), color=False)
    red = np.round((img[..., 0] * nyud2.STD[0] + nyud2.MEAN[0]) * 255).astype(np.uint8)
    expected = np.asarray(Image.fromarray(red).resize((152, 114))) / np.float32(255) * 10
    np.testing.assert_allclose(depth[..., 0], expected, atol=1e-5)
    flips += depth[57, 10, 0] > depth[57, 140, 0]  # a flipped ramp decreases left to right
  assert 0 < flips < 6


def test_augment_matches_scipy_composition():
  """Independent re-derivation of one draw: flip? → rotate(order 2) → centre crop 304×228."""
  rng = np.random.default_rng(3)
  image = rng.integers(0, 256, (240, 320, 3)).astype(np.uint8)
  code = rng.integers(0, 256, (240, 320)).astype(np.uint8)
  draws = np.random.default_rng(11)
  flip, angle = draws.random() < 0.5, draws.uniform(-5, 5)
  img, depth = nyud2.augment_pair(image, code, np.random.default_rng(11), color=False)
  src_img, src_code = (image[:, ::-1], code[:, ::-1]) if flip else (image, code)
  want_img = scipy.ndimage.rotate(src_img, angle, reshape=False, order=2)[6:234, 8:312]
  want_code = scipy.ndimage.rotate(src_code, angle, reshape=False, order=2)[6:234, 8:312]
  np.testing.assert_allclose(img, ((want_img / 255.0) - nyud2.MEAN) / nyud2.STD, atol=1e-5)
  want_depth = np.asarray(Image.fromarray(want_code).resize((152, 114), Image.BICUBIC)) / 255 * 10
  np.testing.assert_allclose(depth[..., 0], want_depth, atol=1e-5)


def _reference_color(image_hwc, draws):
  """The reference's Lighting(0.1, ImageNet PCA) then ColorJitter(0.4, 0.4, 0.4) (nyud2-dir/nyu_transform.py),
  re-derived on a CHW float64 tensor: rgb_c = Σ_j eigvec[c, j]·α_j·eigval_j added per channel, then
  brightness / contrast / saturation in torch.randperm order, each `img.lerp(target, a)`, a ~ U(±0.4),
  with the grayscale 0.299 R + 0.587 G + 0.114 B. `draws` must be in the state the code under test sees."""
  eigval = np.array([0.2175, 0.0188, 0.0045])
  eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
  img = image_hwc.transpose(2, 0, 1).astype(np.float64)
  alpha = draws.normal(0.0, 0.1, 3)
  img = img + (eigvec * alpha[None, :] * eigval[None, :]).sum(1)[:, None, None]
  gray = lambda t: np.broadcast_to(0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2], t.shape)
  for transform in draws.permutation(3):
    a = draws.uniform(-0.4, 0.4)
    target = (np.zeros_like(img), np.full_like(img, gray(img)[0].mean()), gray(img))[transform]
    img = img + a * (target - img)
  return img.transpose(1, 2, 0)


def test_color_augment_matches_the_reference_lighting_and_jitter():
  image = np.random.default_rng(2).uniform(0, 1, (6, 7, 3)).astype(np.float32)
  for seed in range(4):  # different transform orders
    got = nyud2.color_augment(image, np.random.default_rng(seed))
    np.testing.assert_allclose(got, _reference_color(image, np.random.default_rng(seed)), atol=2e-6)
  assert not np.allclose(nyud2.color_augment(image, np.random.default_rng(0)), image, atol=1e-3)


def test_augment_pair_applies_the_colour_transform_after_the_geometry():
  rng = np.random.default_rng(4)
  image = rng.integers(0, 256, (240, 320, 3)).astype(np.uint8)
  code = rng.integers(0, 256, (240, 320)).astype(np.uint8)
  plain, _ = nyud2.augment_pair(image, code, np.random.default_rng(7), color=False)
  coloured, _ = nyud2.augment_pair(image, code, np.random.default_rng(7), color=True)
  draws = np.random.default_rng(7)
  draws.random(), draws.uniform(-5, 5)  # flip, angle
  want = _reference_color(plain * nyud2.STD + nyud2.MEAN, draws)
  np.testing.assert_allclose(coloured, (want - nyud2.MEAN) / nyud2.STD, atol=2e-5)


def test_bundle_elements_and_mask(data_dir):
  bundle = nyud2.get_data(_config(data_dir, min_depth=0.7), seed=0)
  raw = bundle.splits["train"][0]
  assert raw["inputs"].shape == (240, 320, 3) and raw["inputs"].dtype == np.uint8
  assert raw["targets"].shape == (240, 320, 1) and raw["targets"].dtype == np.uint8
  out = bundle.train_augment(raw, np.random.default_rng(0))
  assert out["inputs"].shape == (228, 304, 3) and out["targets"].shape == (114, 152, 1)
  np.testing.assert_array_equal(out["mask"], (out["targets"] >= np.float32(0.7)).astype(np.float32))
  assert 0 < out["mask"].mean() < 1
  fds = bundle.splits["fds_subset"][0]
  assert fds["inputs"].shape == (228, 304, 3) and fds["targets"].shape == (114, 152, 1)
  test = bundle.splits["test"][0]
  assert test["targets"].shape == (228, 304, 1)
  assert bundle.fds_split == "fds_subset" and bundle.fds_buckets["bucket_start"] == 7
  assert len(bundle.splits["fds_subset"]) == 2 and len(bundle.splits["test"]) == 3


# ------------------------------------------------------------------------------ balanced mask


def test_balanced_mask_equal_counts_per_bucket():
  rng = np.random.default_rng(0)
  depths = rng.uniform(0.2, 10.6, (4, 30, 40)).astype(np.float32)
  mask = nyud2.balanced_test_mask(depths, seed=1)
  hist, _ = np.histogram(depths.ravel(), bins=100, range=(0.0, 10.0))
  m = hist[hist > 0].min()
  buckets = np.minimum((depths * np.float32(10)).astype(np.int64), 99)
  per_bucket = np.bincount(buckets[mask == 1], minlength=100)
  assert np.all(per_bucket[7:] == m) and np.all(per_bucket[:7] == 0)
  np.testing.assert_array_equal(mask, nyud2.balanced_test_mask(depths, seed=1))
  assert not np.array_equal(mask, nyud2.balanced_test_mask(depths, seed=2))


def test_balanced_mask_bucket_too_small():
  sparse = np.full(200, 5.05, np.float32)
  sparse[0] = 8.0  # m = 1 (bucket 80), but bucket 7 has no pixel at all
  with pytest.raises(ValueError, match="bucket 7"):
    nyud2.balanced_test_mask(sparse)


def test_prepare_rebuilds_mask(data_dir):
  mask = np.load(nyud2.prepare(data_dir))
  assert mask.shape == (3, 228, 304) and mask.dtype == np.uint8
  depths = nyud2.load_test_depths(data_dir)
  per_bucket = np.bincount(nyud2.BINNING.index(depths[mask == 1]), minlength=100)
  assert len(set(per_bucket[7:])) == 1 and per_bucket[7] > 0


# -------------------------------------------------------------------------------- evaluation


def test_upsample_align_corners_matches_map_coordinates():
  x = np.random.default_rng(0).standard_normal((2, 5, 7)).astype(np.float32)
  out = nyud2.upsample_align_corners(x, (9, 13))
  yy, xx = np.meshgrid(np.arange(9) * 4 / 8, np.arange(13) * 6 / 12, indexing="ij")
  for n in range(2):
    want = scipy.ndimage.map_coordinates(x[n], [yy, xx], order=1)
    np.testing.assert_allclose(out[n], want, atol=1e-5)
  np.testing.assert_allclose(out[:, [0, -1]][:, :, [0, -1]], x[:, [0, -1]][:, :, [0, -1]], atol=1e-6)


def test_evaluate_constant_prediction(data_dir):
  bundle = nyud2.get_data(_config(data_dir), seed=0)
  preds = np.full((3, 114, 152, 1), 4.0, np.float32)
  result = bundle.evaluate("test", preds)
  mask = np.load(os.path.join(data_dir, nyud2.MASK_FILE)).astype(bool)
  depths = nyud2.load_test_depths(data_dir)[mask].astype(np.float64)
  assert result["all"]["count"] == mask.sum()
  assert result["all"]["rmse"] == pytest.approx(np.sqrt(np.mean((4.0 - depths) ** 2)), rel=1e-6)
  assert result["all"]["abs_rel"] == pytest.approx(np.mean(np.abs(4.0 - depths) / depths), rel=1e-6)
  buckets = np.minimum((depths.astype(np.float32) * np.float32(10)).astype(int), 99)  # float32, docs/deviations.md R16
  few = np.isin(buckets, [57, 59, 62, *range(64, 100)])
  assert result["few"]["count"] == few.sum() == 39 * mask.sum() // 93  # 39 few buckets, m pixels each
  with pytest.raises(ValueError, match="114, 152"):
    bundle.evaluate("test", preds[:, :100])
  with pytest.raises(ValueError, match="'test' split only"):
    bundle.evaluate("val", preds)


# ------------------------------------------------------------- the trainer's tables on this bundle


def test_trainer_tables_come_from_the_reference_pixel_counts(data_dir):
  """configs/nyud2_{lds,bni}: the trainer's LDS weight table and BNI prior are the reference's exact
  ones (DIR `nyud2-dir/loaddata.py` weights, BalancedMSE `get_bucket_info` prior values), not a histogram of labels."""
  from configs import nyud2_bni, nyud2_gai, nyud2_lds
  from dirjax import priors, weighting

  bundle = nyud2.get_data(_config(data_dir), seed=0)
  table = weighting.weight_table(nyud2_lds.get_config().reweight, bundle)
  for bucket, value in {7: 1.2461, 21: 0.3042, 50: 1.6599, 99: 18.74}.items():
    assert table[bucket] == pytest.approx(value, rel=5e-4), bucket
  np.testing.assert_array_equal(table[:7], table[7])
  bni = nyud2_bni.get_config()
  prior = priors.from_config("bucket", bni.loss, bni, bundle)
  np.testing.assert_allclose(prior.centers, np.arange(100) / 10 + 0.05, rtol=1e-6)
  np.testing.assert_allclose(prior.weights[:8], 0.006997, atol=5e-7)
  assert prior.weights[9] == pytest.approx(0.014434, abs=1e-6)
  assert np.argmax(prior.weights) == 21 and prior.weights[21] == pytest.approx(0.039557, abs=1e-6)
  gai = nyud2_gai.get_config()
  gmm = priors.from_config("gmm", gai.loss, gai, bundle)
  assert gmm.means.shape == (16, 1)  # fitted on the 3,644 synthetic labels (test_scripts checks the fit)
