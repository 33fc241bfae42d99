"""NYUD2-DIR, ConR (depth variant): per-pixel MSE + β·ConR over the images of the batch.

BorealisAI/ConR `nyud2-dir/ConR.py` and `nyud2-dir/README.md` / `train.py` defaults: one view (the
regression pass), each image's flattened decoder map as its feature, the image-mean depth as its label
and the image-mean predicted depth as its prediction, linear pushing weight e·D·w̄; ω (`-w`) 0.2 m, β
(`--beta`) 0.2, e (`-e`) 0.2, τ (`-t`) 0.2; batch 32, Adam lr 1e-4 (weight decay 1e-4), 20 epochs with
LR ×0.1 every 5. The README gives no RMSE. Where this variant differs from the age one: `dirjax/conr.py`.
ImageNet-pretrained encoder; the rest of the recipe in `configs/nyud2_common.py`.

Run:
  python -m dirjax.main --config=configs/nyud2_conr.py --workdir=/tmp/nyud2_conr \
    --config.data.data_dir=/path/to/nyud2 [--config.model.encoder_weights=/path/resnet50_converted.npz]

`--config=configs/nyud2_conr.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import nyud2_common


def get_config(arg: str = ""):
  c = nyud2_common.base_config()
  c.num_epochs = 20
  c.optimizer.milestones = (5, 10, 15)  # ×0.1 every 5 epochs
  c.regularizers = ml_collections.ConfigDict({"conr": {
    "name": "conr", "weight": 0.2, "window": 0.2, "push_scale": 0.2, "temperature": 0.2, "variant": "depth"}})
  return nyud2_common.for_arg(c, arg)
