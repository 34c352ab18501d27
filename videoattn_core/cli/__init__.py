"""The ``python -m videoattn_core`` command line: the entry point and its subcommands (:mod:`.main`), one module per
command (``summary``, ``predict``, ``explain``, ``evaluate``) and the arguments they share (:mod:`.args`)."""
