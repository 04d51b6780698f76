"""The test-time methods: they compose roles on the bus, each registered by name in ``agentkit.registry``.

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

Behavior curation, BC-SFT data and streaming test-time learning build handbooks and training data rather than
answer problems: they are pipelines (``agentkit.pipelines``), above this package.

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

from .bci import BCI, BCIPlain, bci, retrieve_behaviors
from .examples import WorkedExamples
from .long_cot import LongCoT, long_cot
from .pdr import PDR, SR, PDRConfig, PDRResult, pdr, plan_draft_tokens, sr
from .rsa import RSA, rsa
from .self_consistency import SelfConsistency, self_consistency
from .self_improve import CritiqueRevise, Improvement, SelfImprove, critique_revise, self_improve
from .server import MethodServer, behavior_count_field, result_summary, run_method

# The built-in methods, in the order the CLI lists them.
register(LongCoT())
register(BCI())
register(BCIPlain())
register(PDR())
register(SR())
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
    "CritiqueRevise",
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
    "WorkedExamples",
    "bci",
    "behavior_count_field",
    "critique_revise",
    "get_method",
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
    "sr",
]
