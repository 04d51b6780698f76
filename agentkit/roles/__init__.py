"""Roles: agents that own a backend (and memory where needed), subscribe to messages on the bus and
publish their results: the Strategist (curation), Teacher (BC-SFT data), Student (long-CoT, BCI,
self-improvement, critique-and-revise), and PDR's Refiner and Distiller."""

from .pdr_roles import Distiller, Refiner
from .strategist import Strategist
from .student import Student
from .teacher import Teacher

__all__ = ["Distiller", "Refiner", "Strategist", "Student", "Teacher"]
