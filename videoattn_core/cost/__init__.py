"""What a model costs before it runs: multiply-accumulates per module and per attention kind with fvcore's
conventions (:mod:`.flops`), the peak memory of a forward counted on the meta device and the plan that refuses a
run that would not fit (:mod:`.memory`), how cost grows with frames and image size (:mod:`.growth`), and the
published zoo's accuracy against cost (:mod:`.zoo`). The per-layer walk these read is
:mod:`videoattn_core.inspection`.
"""
