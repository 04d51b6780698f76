"""The methods: pipelines that compose roles on the bus, each registered by name in ``agentkit.registry``.

Registered (``METHODS``; ``agentkit solve --method NAME``, a sweep spec's ``[[methods]] name``):

- ``long-cot``: one chain of thought, the baseline of both papers (``long_cot``);
- ``bci``: behavior-conditioned inference with retrieved behaviors (``bci``); ``bci-plain``: its matched
  baseline, the same prompt without the behavior block;
- ``pdr`` / ``sr``: Parallel-Distill-Refine and Sequential Refinement (``pdr``, ``sr``, ``plan_draft_tokens``);
- ``self-improve`` / ``critique-revise``: behavior-guided self-improvement and its baseline;
- ``self-consistency``: N chains of thought at the matched budget, majority vote (``self_consistency``);
- ``rsa``: Recursive Self-Aggregation, a population refined by aggregating random subsets (``rsa``);
- ``examples``: the k most similar solved problems as worked examples, BCI's example-retrieval baseline
  (``examples``).

Not registered (they build handbooks and training data rather than answer problems): behavior curation
(``curate``, ``build_handbook``), BC-SFT data (``teach``, ``generate_bc_sft``) and streaming test-time learning
(``learn_from_stream``, ``learning_curve``).

Running a method for a caller (``run_method``, ``result_summary``) and answering ``SolveRequest`` on a bus
(``MethodServer``) live in ``server``; every face runs methods through them.

Adding a method: one module with a ``Method[P]`` subclass (parameters as a pydantic model ``P``, a
``MethodRecord`` if it records anything, templates, ``run(problem, ctx)``) and its prompt file, imported below
and registered; see ``recipes/custom_method.py`` for one outside the package.
"""

from agentkit.registry import (
    METHODS,
    Method,
    MethodParams,
    MethodRecord,
    MethodResult,
    RunContext,
    get_method,
    load_plugin,
    method_names,
    register,
)

from .bc_sft import BCSFTReport, generate_bc_sft, sft_example, teach
from .bci import BCI, BCIPlain, bci, retrieve_behaviors
from .curation import BuildReport, Curation, build_handbook, curate
from .examples import WorkedExamples
from .long_cot import LongCoT, long_cot
from .pdr import PDR, SR, SR_METHOD, PDRConfig, PDRResult, pdr, plan_draft_tokens, sr
from .rsa import RSA, rsa
from .self_consistency import SelfConsistency, self_consistency
from .self_improve import CritiqueRevise, Improvement, SelfImprove, critique_revise, self_improve
from .server import MethodServer, result_summary, run_method
from .stream import StreamRow, learn_from_stream, learning_curve, stream_order

# The built-in methods, in the order the CLI lists them.
register(LongCoT())
register(BCI())
register(BCIPlain())
register(PDR())
register(SR_METHOD)
register(SelfImprove())
register(CritiqueRevise())
register(SelfConsistency())
register(RSA())
register(WorkedExamples())

__all__ = [
    "BCI",
    "METHODS",
    "PDR",
    "RSA",
    "SR",
    "BCIPlain",
    "BCSFTReport",
    "BuildReport",
    "CritiqueRevise",
    "Curation",
    "Improvement",
    "LongCoT",
    "Method",
    "MethodParams",
    "MethodRecord",
    "MethodResult",
    "MethodServer",
    "PDRConfig",
    "PDRResult",
    "RunContext",
    "SelfConsistency",
    "SelfImprove",
    "StreamRow",
    "WorkedExamples",
    "bci",
    "build_handbook",
    "critique_revise",
    "curate",
    "generate_bc_sft",
    "get_method",
    "learn_from_stream",
    "learning_curve",
    "load_plugin",
    "long_cot",
    "method_names",
    "pdr",
    "plan_draft_tokens",
    "register",
    "result_summary",
    "retrieve_behaviors",
    "rsa",
    "run_method",
    "self_consistency",
    "self_improve",
    "sft_example",
    "sr",
    "stream_order",
    "teach",
]
