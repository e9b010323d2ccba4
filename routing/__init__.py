"""Understanding callers (category, complaint, place) and choosing who serves them."""

from routing.classify import Classification, classify
from routing.decision import RoutingDecision
from routing.locate import Place, locate
from routing.match import match

__all__ = ["Classification", "Place", "RoutingDecision", "classify", "locate", "match"]
