"""Roles: agents that own a backend (and memory where needed), subscribe to messages on the bus and
publish their results. Now: the Student, and PDR's Refiner and Distiller. The Strategist and Teacher
arrive with the metacognitive-reuse issue."""

from .pdr_roles import Distiller, Refiner
from .student import Student

__all__ = ["Distiller", "Refiner", "Student"]
