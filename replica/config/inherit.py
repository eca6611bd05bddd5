"""Global replica settings copied into each replica (Litestream's ``ReplicaConfig.SetDefaults``).

The top-level inline settings (``access-key-id``, ``region``, ``sync-interval``, …) fill
every replica setting the replica leaves unset. The copy is made on the yaml.v2 tree,
before decoding, because only there is "not set" still distinguishable from a zero value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_origin

import attrs

from replica.config.schema import ReplicaSettings, yaml_key
from replica.config.yamlv2 import Map, Scalar, Seq


def _inherit_kind(f: attrs.Attribute[Any]) -> str:
    """How a global setting fills a replica's: ``str`` (unset = empty string), ``list``
    (unset = empty), ``or`` (a global true wins), ``age`` (per sub-list) or ``ptr``
    (unset = absent or null)."""
    if f.name == "skip_verify":
        return "or"
    if f.name == "age":
        return "age"
    t: Any = f.type
    if t is str:
        return "str"
    if get_origin(t) is tuple:
        return "list"
    return "ptr"


def _unset(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, Scalar) and value.text == ""
    if kind == "list":
        return isinstance(value, Seq) and not value
    return False


def _inherit(replica: Map, glob: Mapping[str, Any]) -> Map:
    """A copy of ``replica`` with the global settings filled in."""
    out = Map(replica.line, replica.log, replica)
    for f in attrs.fields(ReplicaSettings):
        key = yaml_key(f)
        if key not in glob:
            continue
        kind = _inherit_kind(f)
        g = glob[key]
        if kind == "or":
            if isinstance(g, Scalar) and g.value is True:
                out[key] = g
        elif kind == "age":
            mine = out.get(key)
            if isinstance(g, Map) and (mine is None or isinstance(mine, Map)):
                merged = Map(mine.line if mine is not None else g.line, g.log, mine or {})
                for sub in ("identities", "recipients"):
                    if sub in g and _unset(merged.get(sub), "list"):
                        merged[sub] = g[sub]
                out[key] = merged
        elif _unset(out.get(key), kind):
            out[key] = g
    return out


def propagate(tree: Map) -> Map:
    """A copy of the document ``tree`` whose ``dbs[].replica`` and ``dbs[].replicas[]`` have
    the global settings filled in."""
    dbs = tree.get("dbs")
    if not isinstance(dbs, Seq):
        return tree
    new_dbs = Seq(dbs.line, dbs.log)
    for db in dbs:
        if isinstance(db, Map):
            db = Map(db.line, db.log, db)
            if isinstance(db.get("replica"), Map):
                db["replica"] = _inherit(db["replica"], tree)
            replicas = db.get("replicas")
            if isinstance(replicas, Seq):
                db["replicas"] = Seq(
                    replicas.line,
                    replicas.log,
                    [_inherit(r, tree) if isinstance(r, Map) else r for r in replicas],
                )
        new_dbs.append(db)
    out = Map(tree.line, tree.log, tree)
    out["dbs"] = new_dbs
    return out
