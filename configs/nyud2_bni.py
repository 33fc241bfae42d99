"""NYUD2-DIR, Balanced MSE, BNI (bucket prior), σ fixed at 1 m, loss on depth ≥ 0.7 m (Balanced MSE README: RMSE 1.281 / 0.833 / 0.856 / 1.714).

README numbers are overall / many / medium / few RMSE (m) over the balanced test mask, with an
ImageNet-pretrained encoder; recipe and deviations in `configs/nyud2_common.py`. Full-size
training (50,688 images × 10 epochs) needs an accelerator.

Run:
  python -m dirjax.main --config=configs/nyud2_bni.py --workdir=/tmp/nyud2_bni \
    --config.data.data_dir=/path/to/nyud2 [--config.model.encoder_weights=/path/resnet50_converted.npz]

`--config=configs/nyud2_bni.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import nyud2_common


def get_config(arg: str = ""):
  c = nyud2_common.base_config()
  # README: --bmse --imp bni --init_noise_sigma 1.0 --fix_noise_sigma
  c.loss.name = "bni"
  c.loss.prior = "buckets"  # the reference's pixel counts per 0.1 m bucket (TRAIN_BUCKET_NUM)
  c.loss.init_noise_sigma = 1.0
  c.loss.fix_noise_sigma = True
  c.data.loss_min_depth = 0.7  # the Balanced-MSE domain: loss on pixels with depth ≥ 0.7 m
  return nyud2_common.for_arg(c, arg)
