"""Every model of the book by name: ``load_model("CLIP LAION")``, ``load_model("random:clipscope-tiny")``.

``base`` holds what a model is (spec, encoder), ``registry`` turns names into specs and loads CLIPs,
``text_baselines`` the text-only encoders. The book's self-trained CLIPs (``trained:<order>[:seed]``) depend
on the profile's training settings and are resolved one layer up, by :mod:`clipscope_utils.zoo`.
"""

from .base import Encoder, ModelError, ModelSpec, weights_dir
from .registry import PAPER_MODELS, list_names, load_model, paper_models, resolve

__all__ = [
    "PAPER_MODELS",
    "Encoder",
    "ModelError",
    "ModelSpec",
    "list_names",
    "load_model",
    "paper_models",
    "resolve",
    "weights_dir",
]
