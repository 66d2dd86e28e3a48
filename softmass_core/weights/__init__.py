"""Weight sets as data.

Offers: ``manifest`` (the manifest's dataclasses, validation, reading and
writing; torch-free), ``schema`` (its JSON Schema and every problem at once), ``models`` (timm models and safetensors files),
``weight_set`` (``WeightSet``: a verified set whose models load on demand,
and ``write_weight_set``), ``operating`` (DLM-1's rule-out / balanced /
rule-in points, score interval and verdict; numpy only), ``modelcard``,
``card_data``, ``card_operating``, ``card_calibration`` and
``input_check_card`` (the model card rendered from a manifest),
``input_check_file`` (the input check's statistics file and manifest block,
torch-free), ``checkpoint`` (other people's checkpoints read into a timm
model, all tensors or none) and ``pack`` (a complete weight set from such
checkpoints; with a cohort it validates through ``training.retune`` and
``cohorts``, imported when called).  May import: timm, torch, safetensors,
``softmass_core.errors``, ``labels``, ``jsonsafe``, ``stats.formatting``,
``stats.calibration``.
Layered manifest -> models -> weight_set, without cycles.
"""
