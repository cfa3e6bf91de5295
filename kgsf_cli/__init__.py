"""The ``kgsf`` command (:mod:`kgsf_cli.main`): talk to a trained folder from a shell.

It is on the scripts floor with ``examples/`` and ``benchmarks/`` (docs/DESIGN.md, "Floors"): it
uses the model floor's inference API (``modeling_kgsf.pipeline_kgsf``, ``modeling_kgsf.demo_kgsf``)
and nothing imports it. ``python -m kgsf_cli`` runs it without the console script.
"""
