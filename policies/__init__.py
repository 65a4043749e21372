"""Rules: the model, match patterns, the decision engine, the rules file and its secrets.

A pure library: never imports textual; imports mitmproxy only to parse ``filter``
conditions (mitmproxy's filter language).
"""

from .match_pattern import MatchPattern, MatchPatternError, compile_pattern
from .model import ACTIONS_BY_EVENT, EVENTS, Defaults, Rule, RuleSetModel

__all__ = [
    "ACTIONS_BY_EVENT",
    "EVENTS",
    "Defaults",
    "MatchPattern",
    "MatchPatternError",
    "Rule",
    "RuleSetModel",
    "compile_pattern",
]
