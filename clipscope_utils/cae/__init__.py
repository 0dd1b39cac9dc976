"""CAE, paper B: Composition Attribution Enhancement.

Paper B (EMNLP 2024) finds that CLIP's text attributions favour object words over attribute and
relation words, and fine-tunes CLIP with a hinge loss that pulls them level. Modules:

``roles``        which BPE token positions of a caption are objects, attributes or relations
``attribution``  the four attribution methods (attention, GradCAM, perturbation, gradient)
``loss``         ``L_attr = max(A_obj - A_comp + eps, 0)`` and ``L = L_ITC + lambda * L_attr``
``finetune``     CLIP-FT, CLIP-FT with hard negatives and the CLIP-CAE variants, on one loop
"""


class CAEError(ValueError):
    """A CAE request that cannot run (unknown method, bad parameter, captions without roles)."""
