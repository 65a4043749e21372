"""Rules: the model, match patterns, the decision engine, the rules file and its secrets.

A pure library: never imports textual; imports mitmproxy only to parse ``filter``
conditions (mitmproxy's filter language).
"""

from .engine import Decision, Engine, EventDetails
from .match_pattern import MatchPattern, MatchPatternError, compile_pattern
from .model import ACTIONS_BY_EVENT, EVENTS, RESOURCE_TYPES, Defaults, Rule, RuleSetModel
from .resource_types import PageElements, folded_fields, infer_type
from .rules_file import RulesFile, RulesFileError, config_dir, default_rules_path
from .secrets import SecretStore

__all__ = [
    "ACTIONS_BY_EVENT",
    "EVENTS",
    "RESOURCE_TYPES",
    "Decision",
    "Defaults",
    "Engine",
    "EventDetails",
    "MatchPattern",
    "MatchPatternError",
    "PageElements",
    "Rule",
    "RuleSetModel",
    "RulesFile",
    "RulesFileError",
    "SecretStore",
    "compile_pattern",
    "config_dir",
    "default_rules_path",
    "folded_fields",
    "infer_type",
]
