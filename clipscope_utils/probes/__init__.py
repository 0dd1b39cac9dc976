"""Paper A's probes as plain functions of embeddings and object labels (no model inside).

``retrieval``      TOR / IOR / I2TOR / cross-modal TOR: which single object is nearest to a
                   multi-object embedding, per caption position or object size.
``classification`` TOC / IOC: linear probes per position on frozen embeddings.
``matching``       image–text matching, the two scenarios of paper A section 5.1 (Table 6).
``sentences``      caption sets built for a probe (Claim 1's size-category sentences).
``recall``         zero-shot image–text retrieval recall@k (paper B, Table 3).

Keeping models out makes every metric checkable on constructed embeddings with known answers.
"""


class ProbeError(ValueError):
    """A probe got inputs it cannot score (shape mismatch, unknown class, empty set, bad parameter)."""
