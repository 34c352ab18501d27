"""Running a model on a clip: the plan of a run, made once from what a user asks for and passed along
(:mod:`.runtime`: :class:`~videoattn_core.run.runtime.RunPlan`, loading, inputs, classification), the device and
dtype (:mod:`.devices`), ``torch.compile`` as an opt-in (:mod:`.compiled`), predictions on one clip, many clips or a
timeline (:mod:`.predict`), several models on one clip at the same moments (:mod:`.side_by_side`), and measured
forward times (:mod:`.timing`).
"""
