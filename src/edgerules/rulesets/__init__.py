"""Rulesets: ordered rules with Cloudflare's actions that turn a request into a decision.

Built on the language core (:mod:`edgerules.lang`); no certificates, stores or sockets.
Modules, by job:

* ``model``       ``Rule``, ``Decision`` and the Rulesets-API vocabulary
* ``ruleset``     ``Ruleset``: the evaluation order of one ruleset
* ``policy``      ``Policy``: account-level and zone-level entry points
* ``loading``     validating a ruleset document, compiling its rules, plan limits
* ``formats``     ruleset files: JSON and TOML, read and written
* ``index``       the rule index (pre-selecting rules that can match)
* ``resolve``     binding ``execute`` rules to custom rulesets
* ``trace``       explaining a decision
* ``actions``     action parameters and plan limits; ``lists`` named lists;
  ``policytest`` policy-test files; ``errors`` ``RulesetError``/``ListError``
"""

from __future__ import annotations

from edgerules.rulesets.actions import Limits
from edgerules.rulesets.errors import ListError, RulesetError
from edgerules.rulesets.lists import NamedLists
from edgerules.rulesets.model import ALLOW, PHASE, Decision, Rule
from edgerules.rulesets.policy import Policy
from edgerules.rulesets.ruleset import Ruleset
from edgerules.rulesets.trace import RulesetTrace, TraceStep, format_value

__all__ = [
    "ALLOW",
    "PHASE",
    "Decision",
    "Limits",
    "ListError",
    "NamedLists",
    "Policy",
    "Rule",
    "Ruleset",
    "RulesetError",
    "RulesetTrace",
    "TraceStep",
    "format_value",
]
