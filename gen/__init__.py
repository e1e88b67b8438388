"""shiftadd generator: import, quantize, integer network, sizing, emission, CLI.

Importing ``gen`` has no side effects and does not import torch; the torch-facing parts live in
``gen.nn``, ``gen.checkpoint`` and ``gen.quantize``.
"""
