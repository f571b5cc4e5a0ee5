"""The PromQL of a Grafana dashboard, as plain queries a Prometheus server can run.

Grafana sends each panel target's ``expr`` to Prometheus after replacing template
variables (``$topic``) and its own macros (``$__rate_interval``, ``$__range``). Tests of the
shipped dashboard do the same replacement with :func:`render` and then run the queries
against a real Prometheus (:mod:`gapwatch.testing.prometheus`), so a query that Grafana
would show as an error or as "No data" fails a test instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonObject = dict[str, Any]

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$")


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One target of one panel: where it is shown and what it asks Prometheus."""

    panel_title: str
    ref_id: str
    expr: str
    instant: bool


@dataclass(frozen=True, slots=True)
class VariableQuery:
    """A query template variable: ``label_values(<selector>, <label>)``."""

    name: str
    selector: str
    label: str


def load_dashboard(path: Path) -> JsonObject:
    """The dashboard model stored in ``path``."""
    loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} does not hold a dashboard object")
    return loaded


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[JsonObject]:
    """Every panel that is not a row, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus target of every panel, in the order they appear."""
    return [
        PanelQuery(
            panel_title=panel["title"],
            ref_id=target["refId"],
            expr=target["expr"],
            instant=bool(target.get("instant", False)),
        )
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variable_queries(dashboard: Mapping[str, Any]) -> list[VariableQuery]:
    """The dashboard's query variables, each parsed into its selector and label."""
    result = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(f"variable {variable['name']}: not label_values(...): {text!r}")
        result.append(VariableQuery(variable["name"], match["selector"], match["label"]))
    return result


def default_values(*, rate_interval: str = "1m", range_: str = "15m") -> dict[str, str]:
    """Values for the dashboard's variables and Grafana's macros: every topic and instance."""
    return {
        "topic": ".*",
        "instance": ".*",
        "__rate_interval": rate_interval,
        "__interval": rate_interval,
        "__range": range_,
    }


def render(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with ``$name`` and ``${name}`` replaced as Grafana would replace them.

    Raises :class:`KeyError` naming a variable that ``values`` does not provide, so a new
    variable in the dashboard cannot slip through a test unsubstituted.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
