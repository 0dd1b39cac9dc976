"""Compositional benchmarks: generated scenes with attributes and relations, and loaders for the
published benchmarks (ARO, SugarCrepe, Winoground, VALSE) that paper B evaluates on."""

from .items import BenchmarkError, ChoiceItem, PairItem

__all__ = ["BenchmarkError", "ChoiceItem", "PairItem"]
