"""NYUD2-DIR, Balanced MSE, GAI (16-component GMM prior), σ fixed at 1 m, loss on depth ≥ 0.7 m (Balanced MSE README: RMSE 1.279 / 0.819 / 0.917 / 1.705).

README numbers are overall / many / medium / few RMSE (m) over the balanced test mask, with an
ImageNet-pretrained encoder; recipe and deviations in `configs/nyud2_common.py`. Full-size
training (50,688 images × 10 epochs) needs an accelerator.

Run:
  python -m dirjax.main --config=configs/nyud2_gai.py --workdir=/tmp/nyud2_gai \
    --config.data.data_dir=/path/to/nyud2 [--config.model.encoder_weights=/path/resnet50_converted.npz]

`--config=configs/nyud2_gai.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import nyud2_common


def get_config(arg: str = ""):
  return nyud2_common.get_config("gai", arg)
