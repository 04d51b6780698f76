"""Roles: agents that own their model steps, subscribe to messages on the bus and publish their results.

- ``Student``: answers a run's ``AnswerRequest``s with the prompt each names (plain chain of thought,
  behavior-conditioned inference, critique-and-revise, aggregation, a method's own);
- ``Strategist``: solves, reflects and extracts behaviors (curation);
- ``Teacher``: behavior-conditioned answers for BC-SFT data;
- ``Refiner`` and ``Distiller``: PDR/SR's drafts and workspaces.

Methods (``agentkit.methods``) compose roles: a run attaches the roles it needs to its bus (``attached``) and
detaches them when done. Roles are leaves: they import neither methods nor the method registry (import-linter
contracts say so); running a whole method for a caller is ``agentkit.methods.MethodServer``. The answering step
the Student and the Teacher share is ``steps.answer``.
"""

from ._base import Role, ask, attached
from .pdr_roles import Distiller, Refiner
from .strategist import Strategist
from .student import Student
from .teacher import Teacher

__all__ = ["Distiller", "Refiner", "Role", "Strategist", "Student", "Teacher", "ask", "attached"]
