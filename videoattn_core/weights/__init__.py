"""Weights, from a published or a user's checkpoint to a loaded model: the catalog of published checkpoints with
the evaluation recipe each was measured with (:mod:`.catalog`, one module per family; looked up by
:mod:`.lookup`), fetching them into the standard caches, verified (:mod:`.downloads`), the one checkpoint loader
that reads any supported file safely and converts each family's foreign key layouts (:mod:`.checkpoints`), and
models named by where they live — ``hf:ORG/NAME`` or a local directory — read as transformers reads them
(:mod:`.hub`, :mod:`.hf_reading`, :mod:`.hub_card`).
"""
