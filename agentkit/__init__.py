"""agentkit: an asyncio framework for metacognitive reasoning with language models.

Procedural memory (behavior handbooks, after "Metacognitive Reuse", arXiv 2509.13237) and iterative
refinement (Parallel-Distill-Refine, arXiv 2510.01123), built from roles that exchange typed messages
over an asyncio event bus, with honest token accounting.

The layers, each importing only from the ones below it (enforced by import-linter contracts in
``pyproject.toml``, run by ``make lint``)::

    faces        agentkit.faces: cli · service · proxy · mcp_server ·     (users, shells, HTTP, OpenAI clients,
                 view · web (their shared HTTP layer)                     MCP agents, browsers)
    sweep        agentkit.sweep: specs, runner, results database, report  benchmark grids
    pipelines    agentkit.pipelines: curation, BC-SFT data, streaming     build handbooks and training data
                 test-time learning
    methods      agentkit.methods: long-cot, bci, pdr, sr, self-improve,   compose roles on the bus; fill the
                 critique-revise, ...; MethodServer, run_method            registry; run a method for a caller
    registry     agentkit.registry: Method[P], RunContext, MethodRecord,  the method contract; names -> methods
                 METHODS                                                  (plugins: entry-point group)
    roles        agentkit.roles: Student, Strategist, Teacher,            own their model steps; leaves: import
                 Refiner, Distiller                                       neither the registry nor methods
    calls        agentkit.calls: budgeted_chat                            the one budgeted model call
    evaluation   agentkit.evaluation: datasets, answers, grader, stats    answers into numbers
    memory       agentkit.memory: BehaviorStore, QdrantBehaviorStore,     know nothing of roles, methods,
    backends     HandbookClient · agentkit.backends: Backend, middleware  sweeps or faces
    floor        agentkit.messages · bus · ledger · errors · log ·        counts and carries; calls nothing
                 prompts · _behavior (the Behavior value type)

The public surface is re-exported here; ``agentkit.backends``, ``agentkit.memory``, ``agentkit.methods``,
``agentkit.roles`` and ``agentkit.evaluation`` hold the parts. See README.md for the tour.
"""

from agentkit.bus import Bus, Recorder, Subscription, read_recording, replay
from agentkit.errors import (
    AgentkitError,
    BackendError,
    BackendRequestError,
    BackendUnavailable,
    BudgetExceeded,
    BusClosed,
    BusError,
    ConfigError,
    HandlerFailed,
    MalformedResponse,
    ModelNotAvailable,
    RequestTimeout,
)
from agentkit.evaluation.answers import answers_match, extract_answer
from agentkit.evaluation.datasets import load_dataset
from agentkit.ledger import Budget, CallRecord, Ledger
from agentkit.log import configure_logging, get_logger
from agentkit.messages import (
    BehaviorProposal,
    Draft,
    Failure,
    Message,
    Problem,
    RefineRequest,
    Reflection,
    Solution,
    SolveRequest,
    TokenUsage,
    Workspace,
    from_json,
    message_types,
    to_json,
)

__version__ = "0.1.0"

__all__ = [
    "AgentkitError",
    "BackendError",
    "BackendRequestError",
    "BackendUnavailable",
    "BehaviorProposal",
    "Budget",
    "BudgetExceeded",
    "Bus",
    "BusClosed",
    "BusError",
    "CallRecord",
    "ConfigError",
    "Draft",
    "Failure",
    "HandlerFailed",
    "Ledger",
    "MalformedResponse",
    "Message",
    "ModelNotAvailable",
    "Problem",
    "Recorder",
    "RefineRequest",
    "Reflection",
    "RequestTimeout",
    "Solution",
    "SolveRequest",
    "Subscription",
    "TokenUsage",
    "Workspace",
    "answers_match",
    "configure_logging",
    "extract_answer",
    "from_json",
    "get_logger",
    "load_dataset",
    "message_types",
    "read_recording",
    "replay",
    "to_json",
]
