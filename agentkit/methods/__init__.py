"""The pipelines the papers define, each built from roles and the ledger.

Now: the long chain-of-thought baseline. PDR/SR, BCI and self-improvement arrive with their issues.
"""

from .long_cot import long_cot

__all__ = ["long_cot"]
