"""One module per chapter group: what a chapter computes, so its notebook only sets parameters, calls,
displays and plots. Studies sit on top of the package (they may use any layer below, never each other's
internals) and below the book runner.

``dataset``        the generated scenes as a reader sees them (grids, explorer, classes)
``probes``         text encoder, image encoder and image-text matching chapters (paper A sections 3, 5.1)
``attention``      CLS attention (Figure 3)
``pretraining``    the self-trained CLIPs of the profile's ``pretraining`` block: runs, losses, sanity
``origin``         the causal test of the origin hypothesis and the training progression (section 4.3, Fig. 4c)
``size_prior``     Claim 1 causally: a class-size prior in training
``caption_order``  Claim 2: where captions mention the largest object
``cae``            paper B: fine-tuning grid, benchmarks, attribution distributions
"""
