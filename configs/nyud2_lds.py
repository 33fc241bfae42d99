"""NYUD2-DIR, LDS: inverse weights of the gaussian-smoothed (ks 5, σ 2) bucket counts (README: RMSE 1.387 / 0.671 / 0.913 / 1.954).

README numbers are overall / many / medium / few RMSE (m) over the balanced test mask, with an
ImageNet-pretrained encoder; recipe and deviations in `configs/nyud2_common.py`. Full-size
training (50,688 images × 10 epochs) needs an accelerator.

Run:
  python -m dirjax.main --config=configs/nyud2_lds.py --workdir=/tmp/nyud2_lds \
    --config.data.data_dir=/path/to/nyud2 [--config.model.encoder_weights=/path/resnet50_converted.npz]

`--config=configs/nyud2_lds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import nyud2_common


def get_config(arg: str = ""):
  c = nyud2_common.base_config()
  # README: --reweight inverse --lds --lds_kernel gaussian --lds_ks 5 --lds_sigma 2
  c.reweight.method = "inverse"
  c.reweight.lds = True
  return nyud2_common.for_arg(c, arg)
