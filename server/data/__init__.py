"""Competition data: the procedural demo set and preparation of a real dataset clone (`arena data ...`)."""

from server.data.demo import make_demo_competition
from server.data.errors import DataPreparationError
from server.data.prepare import PrepareResult, prepare_competition

__all__ = ["DataPreparationError", "PrepareResult", "make_demo_competition", "prepare_competition"]
