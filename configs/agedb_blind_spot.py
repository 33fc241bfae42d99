"""AgeDB-DIR, blind spot protocol of Puetz et al. (2026): vanilla L1 on their resampled split file.

`data.protocol = "blind_spot"` reads `<data_dir>/protocols/agedb_blindspot.csv` (copy the files from
noah-puetz/deconstructing_deep_imbalanced_regression `data/` there); evaluation adds the
under-represented test range (`ranges/...`, `dirjax.data.protocols`) and SERA. Recipe otherwise that of
`configs/agedb_vanilla.py`; compare methods over seeds with the variants and `dirjax.sweep`:

  python -m dirjax.sweep --config=configs/agedb_blind_spot.py --workdir=/tmp/agedb_blind_spot --seeds=5 \\
    --baseline=vanilla --config.data.data_dir=/data/agedb
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.data.protocol = "blind_spot"
  c.report.metrics = ("all/mae", "many/mae", "medium/mae", "few/mae", "ranges/blind_spot/mae")
  c.variants = age_common.stage1_variants()
  return age_common.for_arg(c, arg)
