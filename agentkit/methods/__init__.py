"""The pipelines the papers define, each built from roles and the ledger.

- long chain-of-thought (``long_cot``), the baseline of both papers;
- Parallel-Distill-Refine / Sequential Refinement (``pdr``, ``sr``, ``plan_draft_tokens``);
- behavior curation (``curate``, ``build_handbook``), behavior-conditioned inference (``bci``,
  ``retrieve_behaviors``), behavior-guided self-improvement and critique-and-revise (``self_improve``,
  ``critique_revise``), and BC-SFT data (``teach``, ``generate_bc_sft``).
"""

from .bc_sft import BCSFTReport, generate_bc_sft, sft_example, teach
from .bci import bci, retrieve_behaviors
from .curation import BuildReport, Curation, build_handbook, curate
from .long_cot import long_cot
from .pdr import PDRConfig, PDRResult, pdr, plan_draft_tokens, sr
from .self_improve import Improvement, critique_revise, self_improve

__all__ = [
    "BCSFTReport",
    "BuildReport",
    "Curation",
    "Improvement",
    "PDRConfig",
    "PDRResult",
    "bci",
    "build_handbook",
    "critique_revise",
    "curate",
    "generate_bc_sft",
    "long_cot",
    "pdr",
    "plan_draft_tokens",
    "retrieve_behaviors",
    "self_improve",
    "sft_example",
    "sr",
    "teach",
]
