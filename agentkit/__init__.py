"""agentkit: an asyncio framework for metacognitive reasoning with language models.

Procedural memory (behavior handbooks, after "Metacognitive Reuse", arXiv 2509.13237) and iterative
refinement (Parallel-Distill-Refine, arXiv 2510.01123), built from roles that exchange typed messages
over an asyncio event bus, with honest token accounting. See README.md and DESIGN.md.

The public surface is re-exported here; sub-packages ``agentkit.backends`` and ``agentkit.memory`` hold
the pluggable parts.
"""

from agentkit.bus import Bus, Recorder, Subscription, read_recording, replay
from agentkit.datasets import load_dataset
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
from agentkit.grading import answers_match, extract_answer
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
