"""Every model of the book, by name: ``load_model("CLIP LAION")``, ``load_model("random:clipscope-tiny")``.

See :mod:`clipscope_utils.models.registry` for the accepted names and where weights are looked up.
"""

from .registry import (
    PAPER_MODELS,
    Encoder,
    ModelError,
    ModelSpec,
    file_sha256,
    list_names,
    load_model,
    paper_models,
    resolve,
    weights_dir,
)

__all__ = [
    "PAPER_MODELS",
    "Encoder",
    "ModelError",
    "ModelSpec",
    "file_sha256",
    "list_names",
    "load_model",
    "paper_models",
    "resolve",
    "weights_dir",
]
