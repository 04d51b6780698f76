"""Roles: agents that own their model steps, subscribe to messages on the bus and publish their results.

- ``Student``: answers (plain chain of thought, behavior-conditioned inference, critique-and-revise); for
  everyone, it also answers ``SolveRequest`` with any registered method;
- ``Strategist``: solves, reflects and extracts behaviors (curation);
- ``Teacher``: behavior-conditioned answers for BC-SFT data;
- ``Refiner`` and ``Distiller``: PDR/SR's drafts and workspaces.

Methods (``agentkit.methods``) compose roles: a run attaches the roles it needs to its bus (``attached``) and
detaches them when done. Roles never import methods; the Student finds methods through ``agentkit.registry``.
"""

from ._base import Role, ask, attached
from .pdr_roles import Distiller, Refiner
from .strategist import Strategist
from .student import Student
from .teacher import Teacher

__all__ = ["Distiller", "Refiner", "Role", "Strategist", "Student", "Teacher", "ask", "attached"]
