"""NYUD2-DIR, plain per-pixel MSE (the README's base method Vanilla; paper Table: RMSE 1.477 / 0.591 / 0.952 / 2.123, recalled, not in the README).

README numbers are overall / many / medium / few RMSE (m) over the balanced test mask, with an
ImageNet-pretrained encoder; recipe and deviations in `configs/nyud2_common.py`. Full-size
training (50,688 images × 10 epochs) needs an accelerator.

Run:
  python -m dirjax.main --config=configs/nyud2_vanilla.py --workdir=/tmp/nyud2_vanilla \
    --config.data.data_dir=/path/to/nyud2 [--config.model.encoder_weights=/path/resnet50_converted.npz]

`--config=configs/nyud2_vanilla.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import nyud2_common


def get_config(arg: str = ""):
  c = nyud2_common.base_config()
  return nyud2_common.for_arg(c, arg)
