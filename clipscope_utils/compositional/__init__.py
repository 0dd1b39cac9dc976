"""Compositional benchmarks: generated scenes with attributes and relations, and loaders for the
published benchmarks (ARO, SugarCrepe, Winoground, VALSE, VL-CheckList, SVO-Probes, ComVG) that paper B
evaluates on."""

from .items import BenchmarkError, ChoiceItem, ImageChoiceItem, ItemList, PairItem

__all__ = ["BenchmarkError", "ChoiceItem", "ImageChoiceItem", "ItemList", "PairItem"]
