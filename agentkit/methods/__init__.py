"""The pipelines the papers define, each built from roles and the ledger.

Now: the long chain-of-thought baseline and Parallel-Distill-Refine / Sequential Refinement (``pdr``,
``sr``, ``plan_draft_tokens``). BCI and self-improvement arrive with their issue.
"""

from .long_cot import long_cot
from .pdr import PDRConfig, PDRResult, pdr, plan_draft_tokens, sr

__all__ = ["PDRConfig", "PDRResult", "long_cot", "pdr", "plan_draft_tokens", "sr"]
