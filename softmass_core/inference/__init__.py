"""Running a weight set on cases.

Offers: ``cascade`` (DLM-1 then DLM-2, every stage recorded), ``tta``
(test-time views), ``gradcam`` (Grad-CAM on a private copy of a model's
tail), ``focus`` (the model's focus against the reader's: complete / most /
partial / none), ``points`` (a result re-decided at another operating point) and ``serving`` (one shared, batching inference worker per
weight set).  May import: torch, timm, pytorch-grad-cam, ``softmass_core.io``,
``weights``, ``errors``, ``labels``; never ``cohorts``, ``training`` or the CLI.
"""
