"""Weight sets as data.

Offers: ``manifest`` (the manifest's schema, validation, reading and
writing; torch-free), ``models`` (timm models and safetensors files),
``weight_set`` (``WeightSet``: a verified set whose models load on demand,
and ``write_weight_set``), ``operating`` (DLM-1's rule-out / balanced /
rule-in points, score interval and verdict; numpy only), ``modelcard``,
``card_data`` and ``card_operating`` (the model card rendered from a manifest).  May import: timm, torch, safetensors,
``softmass_core.errors``, ``labels``, ``jsonsafe``, ``stats.formatting``.
Layered manifest -> models -> weight_set, without cycles.
"""
