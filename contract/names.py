"""Server names: the contract's rule for a name, and its hashed id (spec section 4)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from contract.spec import SERVER_NAME_MAX_LENGTH

logger = logging.getLogger("data_contract")  # the public module's name, as before the split


def server_name_problem(name: str) -> str | None:
    """Why a server name breaks the contract, or None. A name has 1 to
    SERVER_NAME_MAX_LENGTH characters, all printable as str.isprintable defines it (no
    control, format, separator or other invisible character, Unicode categories C and Z,
    except the plain space), and neither starts nor ends with a space."""
    if not name:
        return "must not be empty"
    if len(name) > SERVER_NAME_MAX_LENGTH:
        return f"must have at most {SERVER_NAME_MAX_LENGTH} characters"
    if not name.strip():
        return "must contain a non-whitespace character"
    if not name.isprintable():
        return "must not contain control, format or other invisible characters"
    if name[0] == " " or name[-1] == " ":
        return "must not start or end with a space"
    return None


def encode_server_name(server_name: str) -> str:
    """Deterministic id: first 8 hex digits of SHA-256, as an int, modulo 1,000,000."""
    hash_int = int(hashlib.sha256(server_name.encode("utf-8")).hexdigest()[:8], 16)
    return str(hash_int % 1_000_000)


def create_server_mapping(server_names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Bidirectional mapping {'name_to_id': {...}, 'id_to_name': {...}}.

    Ids live in a space of 1,000,000, so large fleets have a few collisions (two names
    share an embedding id). id_to_name then keeps the first name in sorted order and a
    warning lists the pair; components key their state by server_name, never by id.
    """
    name_to_id = {name: encode_server_name(name) for name in sorted(set(server_names))}
    id_to_name: dict[str, str] = {}
    for name, sid in name_to_id.items():
        if sid in id_to_name:
            logger.warning("server id collision: %r and %r share id %s", id_to_name[sid], name, sid)
            continue
        id_to_name[sid] = name
    return {"name_to_id": name_to_id, "id_to_name": id_to_name}


def decode_server_name(server_id: str, mapping: dict[str, dict[str, str]]) -> str:
    """Original name for an id, or 'UNKNOWN_{id}' if the mapping does not know it."""
    return mapping["id_to_name"].get(server_id, f"UNKNOWN_{server_id}")
