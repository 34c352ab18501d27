"""Attention, from the model's attention cores to what the pages draw: the one capture mechanism
(:mod:`.capture`), captured attention laid back on the T×H×W token grid and rolled out across layers
(:mod:`.maps`), per-head statistics (:mod:`.head_stats`), and class-specific explanations — relevance, rollout and
Grad-CAM — over the input frames (:mod:`.explanations`).

Every family declares its attention layouts and readout at the call site or in its registration, so nothing here
branches on a family's name.
"""
