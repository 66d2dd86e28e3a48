"""Weight sets as data.

Offers: ``manifest`` (the manifest's schema, validation, reading and
writing; torch-free), ``models`` (timm models and safetensors files),
``weight_set`` (``WeightSet``: a verified set whose models load on demand,
and ``write_weight_set``), ``modelcard``, ``card_data`` and ``input_check_card`` (the model card
rendered from a manifest), ``input_check_file`` (the input check's
statistics file and manifest block, torch-free).  May import: timm, torch, safetensors,
``softmass_core.errors``, ``labels``, ``jsonsafe``, ``stats.formatting``.
Layered manifest -> models -> weight_set, without cycles.
"""
