"""Running a weight set on cases.

Offers: ``cascade`` (DLM-1 then DLM-2, every stage recorded), ``tta``
(test-time views), ``gradcam`` (Grad-CAM on a private copy of a model's
tail), ``cam_display`` (colour bar and caption of a Grad-CAM overlay),
``focus`` (the model's focus against the reader's: complete / most /
partial / none), ``points`` (a result re-decided at another operating
point), ``serving`` (one shared, batching inference worker per weight set)
and ``input_check`` (is an image unlike the training ROIs: plausibility
checks and a distance on DLM-1's features).  May import: torch, timm,
pytorch-grad-cam, ``softmass_core.io``,
``weights``, ``errors``, ``labels``; never ``cohorts``, ``training`` or the CLI.
"""
