"""Pipelines: runs that build handbooks and training data rather than answer one problem, composed from roles and
methods (so they sit above ``agentkit.methods`` and are not in its registry).

- behavior curation (``curate``, ``build_handbook``): the Strategist solves, reflects and extracts behaviors into a
  handbook, resumable per (problem, trace);
- BC-SFT data (``teach``, ``generate_bc_sft``): the Teacher's behavior-conditioned answers as fine-tuning pairs
  whose prompts hold no behaviors;
- streaming test-time learning (``learn_from_stream``, ``learning_curve``, ``stream_order``): a handbook that
  learns as a seeded stream goes by, measured as it learns.
"""

from .bc_sft import BCSFTReport, generate_bc_sft, sft_example, teach
from .curation import BuildReport, Curation, build_handbook, curate
from .stream import StreamRow, learn_from_stream, learning_curve, stream_order

__all__ = ["BCSFTReport", "BuildReport", "Curation", "StreamRow", "build_handbook", "curate", "generate_bc_sft",
           "learn_from_stream", "learning_curve", "sft_example", "stream_order", "teach"]
