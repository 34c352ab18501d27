"""Clips, from a file to the model's input: what a container says without decoding it (:mod:`.probe`), which
frames each published evaluation reads (:mod:`.sampling`), decoding those frames with PyAV (:mod:`.decode`), the
resize, crop and normalisation of each source's test transform (:mod:`.preprocessing`), and writing frames back
to a video file (:mod:`.writer`: the overlays of the app and the command line, the samples, the tests' clips).

Nothing here knows a model family: a :class:`~videoattn_core.weights.lookup.Recipe` says what to read and how.
"""
