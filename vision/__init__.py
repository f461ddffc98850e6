"""feedbench.vision: image preprocessing (decode, augment, normalize), one module per framework, same semantics.

The pipelines arrive with their own issues; this package exists so the layout and the
installed namespace are complete.
"""

__all__: list[str] = []
