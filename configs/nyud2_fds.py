"""NYUD2-DIR, FDS on the 128-d per-pixel features of the head R (README: RMSE 1.442 / 0.615 / 0.940 / 2.059).

README numbers are overall / many / medium / few RMSE (m) over the balanced test mask, with an
ImageNet-pretrained encoder; recipe and deviations in `configs/nyud2_common.py`. Full-size
training (50,688 images × 10 epochs) needs an accelerator.

Run:
  python -m dirjax.main --config=configs/nyud2_fds.py --workdir=/tmp/nyud2_fds \
    --config.data.data_dir=/path/to/nyud2 [--config.model.encoder_weights=/path/resnet50_converted.npz]

`--config=configs/nyud2_fds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import nyud2_common


def get_config(arg: str = ""):
  c = nyud2_common.base_config()
  c.fds.enabled = True  # README: --fds --fds_kernel gaussian --fds_ks 5 --fds_sigma 2
  return nyud2_common.for_arg(c, arg)
