"""softmass_core: the Streamlit-free engine of the softmass DLM demo.

Modules, one concept each: ``images`` and ``roi`` (input), ``weights`` and
``models`` (weight sets), ``cascade`` (DLM-1 then DLM-2), ``gradcam`` and
``focus`` (explanations), ``metrics``, ``cohort`` and ``evaluate``
(statistics), ``phantom`` (simulated cases), ``train``, ``store`` (reader
study), ``bench`` and ``cli``.
"""

__version__ = "0.1.0"
