"""AgeDB-DIR, bimodal interpolation protocol of Puetz et al. (2026): vanilla L1 on their resampled split file.

`data.protocol = "bimodal_interpolation"` reads `<data_dir>/protocols/agedb_interpolation.csv` (copy the files from
noah-puetz/deconstructing_deep_imbalanced_regression `data/` there); evaluation adds the
under-represented test range (`ranges/...`, `dirjax.data.protocols`) and SERA. Recipe otherwise that of
`configs/agedb_vanilla.py`; compare methods over seeds with the variants and `dirjax.sweep`:

  python -m dirjax.sweep --config=configs/agedb_bimodal_interpolation.py --workdir=/tmp/agedb_bimodal_interpolation --seeds=5 \\
    --baseline=vanilla --config.data.data_dir=/data/agedb
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.data.protocol = "bimodal_interpolation"
  c.report.metrics = ("all/mae", "many/mae", "medium/mae", "few/mae", "ranges/middle/mae")
  c.variants = age_common.stage1_variants()
  return age_common.for_arg(c, arg)
