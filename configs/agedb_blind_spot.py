"""AgeDB-DIR, blind spot protocol of Puetz et al. (2026): vanilla L1 on their resampled split file.

`data.protocol = "blind_spot"` reads `<data_dir>/protocols/agedb_blindspot.csv` (copy the files from
noah-puetz/deconstructing_deep_imbalanced_regression `data/` there); evaluation adds the
under-represented test range (`ranges/...`, `dirjax.data.protocols`) and SERA. Recipe otherwise that of
`configs/agedb_vanilla.py`; one run trains each variant into `<workdir>/<variant>/`:

  python -m dirjax.main --config=configs/agedb_blind_spot.py --workdir=/tmp/agedb_blind_spot \\
    --config.data.data_dir=/data/agedb

or compare the variants over seeds with `dirjax.sweep`:

  python -m dirjax.sweep --config=configs/agedb_blind_spot.py --workdir=/tmp/agedb_blind_spot --seeds=5 \\
    --baseline=vanilla --config.data.data_dir=/data/agedb
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.data.protocol = "blind_spot"
  c.report.metrics = ("all/mae", "many/mae", "medium/mae", "few/mae", "ranges/blind_spot/mae")
  c.variants = ml_collections.ConfigDict(sort_keys=False, initial_dictionary={
    "vanilla": {},
    "sqinv_lds": {"reweight": {"method": "sqrt_inv", "lds": True}},
    "fds": {"reweight": {"method": "sqrt_inv"}, "fds": {"enabled": True}},
  })
  return age_common.for_arg(c, arg)
