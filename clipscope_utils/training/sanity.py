"""Sanity of a self-trained CLIP before any bias is read from it: does it recognise the objects at all?

Zero-shot single-object accuracy (each single-object image against the single-object captions of all
classes) and image↔caption recall@1 on unseen multi-object scenes. A model at chance has no object
representation whose biases could mean anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import measure
from ..datasets.tables import SceneSet
from ..embeddings import embed_images, embed_texts
from ..models.base import Encoder
from ..probes import inputs


def zero_shot(enc: Encoder, scenes: SceneSet, template: str = "and", size: str = "large") -> pd.DataFrame:
    """Per single-object image: ``class_id``, ``predicted`` (nearest single-object caption), ``hit``."""
    refs = inputs.reference_images(scenes, size)
    text = embed_texts(enc, inputs.single_captions(scenes.classes, template).text.tolist(), progress=False)
    image = embed_images(enc, refs.path.tolist(), progress=False)
    predicted = (image @ text.T).argmax(axis=1)
    return pd.DataFrame({"image_id": refs.image_id, "class_id": refs.class_id, "predicted": predicted,
                         "hit": (predicted == refs.class_id.to_numpy()).astype(float)})


def recall_at_1(enc: Encoder, scenes: SceneSet, template: str = "and") -> pd.DataFrame:
    """Per multi-object scene: is its own caption the nearest caption (image→text), and vice versa?"""
    q = inputs.caption_queries(scenes, template)
    paths = scenes.images.set_index("image_id").path
    image = embed_images(enc, [str(scenes.root / paths[i]) for i in q.query_id], progress=False)
    text = embed_texts(enc, q.text.tolist(), progress=False)
    sim = image @ text.T
    own = np.arange(len(q))
    rows = [pd.DataFrame({"image_id": q.query_id, "n_objects": q.n_objects, "direction": d,
                          "hit": (s.argmax(axis=1) == own).astype(float)})
            for d, s in (("image→text", sim), ("text→image", sim.T))]
    return pd.concat(rows, ignore_index=True)


def own_object_share(enc: Encoder, scenes: SceneSet, template: str = "and") -> pd.DataFrame:
    """Per multi-object query: is its nearest single-object reference (of all classes) one of its own objects?
    Image queries against centred reference images (IOR) and caption queries against single captions (TOR)."""
    rows = []
    for probe, frame in (("IOR", measure.ior(enc, scenes)), ("TOR", measure.tor(enc, scenes, template))):
        per_query = frame.groupby("query_id", sort=False).agg(n_objects=("n_objects", "first"), miss=("miss", "first"))
        rows.append(pd.DataFrame({"image_id": per_query.index, "n_objects": per_query.n_objects, "probe": probe,
                                  "hit": 1.0 - per_query.miss.to_numpy()}))
    return pd.concat(rows, ignore_index=True)
