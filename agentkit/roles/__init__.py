"""Roles: agents that own a backend (and memory where needed), subscribe to messages on the bus and
publish their results. Now: the Student. Strategist, Teacher, Distiller and Refiner arrive with the
procedural-memory and PDR issues."""

from .student import Student

__all__ = ["Student"]
