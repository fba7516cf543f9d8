"""What ``POST /predict/dns`` takes: query names, CIC feature rows, or both.

Either ``{"queries": [name, ...], "rows": [row, ...]}`` or one JSON array whose items are a query name,
``{"query": name}`` or a feature row with the CIC-Bell-DNS-EXF-2021 columns (SPECS §4). The model
documents the body (OpenAPI, the fuzzer); :meth:`vigil.tasks.dns_exfil.task.DnsExfilTask.predict` reads
each item itself, so good items are answered and bad ones named in the one per-record shape
``{"index", "field", "message"}``, never the whole request refused for one odd name.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS

# one field per CIC column; text columns (longest_word, sld) and numbers alike, as the CSVs hold them
_COLUMNS: dict[str, Any] = {
    column: (float | str, Field(description=f"CIC column {column}")) for column in FEATURE_COLUMNS
}
FeatureRow: Any = create_model("FeatureRow", __config__=ConfigDict(extra="allow"), **_COLUMNS)


class QueryItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    query: str = Field(description="a query name, in presentation form (\\DDD escapes allowed)")


class NamesAndRows(BaseModel):
    queries: list[str] = Field(default_factory=list, description="query names, answered by the per-query model")
    rows: list[FeatureRow] = Field(default_factory=list, description="CIC feature rows, answered by the CIC model")


REQUEST: Any = NamesAndRows | list[str | QueryItem | FeatureRow]

__all__ = ["REQUEST", "FeatureRow", "NamesAndRows", "QueryItem"]
