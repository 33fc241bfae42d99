"""STS-B-DIR, LDS: inverse weights of the gaussian-smoothed (ks 5, σ 2) label histogram (README LDS row: MSE 0.914 / 0.819 / 1.319 / 0.955).

README numbers are overall / many / medium / few test MSE of the paper's BiLSTM + GloVe model;
the default encoder here is frozen all-MiniLM-L6-v2 + MLP (recipe, label scale and deviations in
`configs/stsb_common.py`). About 1–2 min on 2 CPU cores once the embedding cache exists
(`stsb.prepare` builds it on first use, ~3–8 min).

Run:
  python -m dirjax.main --config=configs/stsb_lds.py --workdir=/tmp/stsb_lds \
    --config.data.data_dir=/path/to/sts-b-dir [--config.data.cache_dir=/writable/dir]

Paper model (BiLSTM, GloVe): `--config=configs/stsb_lds.py:bilstm --config.data.glove=/path/glove.840B.300d.txt
--config.model.embeddings=<cache_dir>/stsb_embeddings.npy`. `:smoke` / `:bilstm_smoke` are the
one-step versions the tests run on a tiny fixture.
"""

from configs import stsb_common


def get_config(arg: str = ""):
  c = stsb_common.base_config(arg)
  # README: --reweight inverse --lds --lds_kernel gaussian --lds_ks 5 --lds_sigma 2
  c.reweight.method = "inverse"
  c.reweight.lds = True
  return stsb_common.for_arg(c, arg)
