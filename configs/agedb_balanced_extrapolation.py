"""AgeDB-DIR, balanced extrapolation protocol of Puetz et al. (2026): vanilla L1 on their resampled split file.

`data.protocol = "balanced_extrapolation"` reads `<data_dir>/protocols/agedb_extrapolation.csv` (copy the files from
noah-puetz/deconstructing_deep_imbalanced_regression `data/` there); evaluation adds the
under-represented test range (`ranges/...`, `dirjax.data.protocols`) and SERA. Recipe otherwise that of
`configs/agedb_vanilla.py`; compare methods over seeds with the variants and `dirjax.sweep`:

  python -m dirjax.sweep --config=configs/agedb_balanced_extrapolation.py --workdir=/tmp/agedb_balanced_extrapolation --seeds=5 \\
    --baseline=vanilla --config.data.data_dir=/data/agedb
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.data.protocol = "balanced_extrapolation"
  c.report.metrics = ("all/mae", "many/mae", "medium/mae", "few/mae", "ranges/tails/mae")
  c.variants = age_common.stage1_variants()
  return age_common.for_arg(c, arg)
