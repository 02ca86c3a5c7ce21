"""The in-toto v1 statement of an OpenSSF model signature (predicate ``https://model_signing/signature/v1.0``).

::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": <model folder or file name>, "digest": {"sha256": <root digest>}}],
     "predicateType": "https://model_signing/signature/v1.0",
     "predicate": {
       "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                         "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"]},
       "resources": [{"name": "<relative POSIX path>", "algorithm": "sha256", "digest": "<hex>"}, ...]}}

The root digest is SHA-256 over the raw 32-byte digests of the resources, concatenated in the order
they are listed (``model_signing.signing.Payload``). The subject name is informative only: renaming the
model folder does not invalidate the signature. Spec: https://github.com/in-toto/attestation/tree/main/spec/v1

The reader is strict, because what it returns decides whether a model is trusted: a duplicate JSON key
or resource name, a path that leaves the model folder, a digest algorithm or serialization other than
SHA-256 over whole files, or a root digest that does not match its resources is ``IntegrityError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from mlwarden.errors import IntegrityError
from mlwarden.supplychain._files import SINGLE_FILE, FileDigest, is_safe_path, is_sha256_hex

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"

MALFORMED_HINT = "the signature file is damaged or was edited; fetch it again from where the model was signed"


@dataclass(frozen=True)
class Statement:
    name: str
    digests: tuple[FileDigest, ...]  # in the statement's order
    ignored: tuple[str, ...]  # relative paths the signer left out (serialization.ignore_paths)


def root_digest(digests: Sequence[FileDigest]) -> str:
    hasher = hashlib.sha256()
    for d in digests:
        hasher.update(bytes.fromhex(d.sha256))
    return hasher.hexdigest()


def encode_statement(name: str, digests: Sequence[FileDigest], ignored: Sequence[str]) -> bytes:
    """The statement as compact JSON with sorted keys (the signature covers these exact bytes)."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": root_digest(digests)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": sorted(ignored),
            },
            "resources": [{"name": d.path, "algorithm": "sha256", "digest": d.sha256} for d in digests],
        },
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("ascii")


def decode_statement(payload: bytes) -> Statement:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        malformed("the statement", "is not UTF-8")
    doc = obj(loads_strict(text, "the statement"), "the statement")
    if doc.get("_type") != STATEMENT_TYPE:
        malformed("the statement", f"is not an in-toto v1 statement (_type {doc.get('_type')!r})")
    if doc.get("predicateType") != PREDICATE_TYPE:
        malformed("the statement", f"has predicateType {doc.get('predicateType')!r}, not {PREDICATE_TYPE}")
    subjects = get_list(doc, "subject", "the statement")
    if len(subjects) != 1:
        malformed("the statement", f"has {len(subjects)} subjects, not one")
    subject = obj(subjects[0], "subject[0]")
    name = get_str(subject, "name", "subject[0]")
    root = get_str(get_obj(subject, "digest", "subject[0]"), "sha256", "subject[0].digest")
    predicate = get_obj(doc, "predicate", "the statement")
    ignored = _serialization(get_obj(predicate, "serialization", "predicate"))
    digests = _resources(get_list(predicate, "resources", "predicate"))
    if root != root_digest(digests):
        malformed("the statement", "has a root digest that does not match its resources")
    return Statement(name, digests, ignored)


def _serialization(ser: dict[str, object]) -> tuple[str, ...]:
    where = "predicate.serialization"
    method, hash_type = get_str(ser, "method", where), get_str(ser, "hash_type", where)
    if method != "files" or hash_type != "sha256":
        malformed(where, f"is {method!r} with {hash_type!r}; mlwarden verifies whole files hashed with SHA-256")
    if not isinstance(ser.get("allow_symlinks"), bool):
        malformed(where, "has no boolean allow_symlinks")
    ignored = ser.get("ignore_paths", [])
    if not isinstance(ignored, list) or not all(isinstance(p, str) and is_safe_path(p) for p in ignored):
        malformed(where, "has ignore_paths that are not relative paths inside the model")
    return tuple(ignored)


def _resources(resources: list[object]) -> tuple[FileDigest, ...]:
    digests: list[FileDigest] = []
    for i, item in enumerate(resources):
        where = f"predicate.resources[{i}]"
        resource = obj(item, where)
        name, digest = get_str(resource, "name", where), get_str(resource, "digest", where)
        if get_str(resource, "algorithm", where) != "sha256":
            malformed(where, "is not hashed with SHA-256")
        if not is_sha256_hex(digest):
            malformed(where, "has a digest that is not 64 lowercase hex digits")
        if not (is_safe_path(name) or (name == SINGLE_FILE and len(resources) == 1)):
            malformed(where, f"names {name!r}, which is not a relative path inside the model")
        digests.append(FileDigest(name, digest))
    if not digests:
        malformed("predicate.resources", "is empty")
    if len({d.path for d in digests}) != len(digests):
        malformed("predicate.resources", "names a file twice")
    return tuple(digests)


# --- strict JSON access ---


def malformed(where: str, problem: str) -> NoReturn:
    raise IntegrityError(f"malformed model signature: {where} {problem}", hint=MALFORMED_HINT)


def loads_strict(text: str, where: str) -> object:
    """JSON with no duplicate keys (two parsers could pick different ones) and no NaN or Infinity."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        result = dict(items)
        if len(result) != len(items):
            malformed(where, "repeats a JSON key")
        return result

    def constant(name: str) -> NoReturn:
        malformed(where, f"holds {name}, which is not JSON")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):
        malformed(where, "is not valid JSON")


def obj(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        malformed(where, "is not a JSON object")
    return value


def get_obj(doc: dict[str, object], key: str, where: str) -> dict[str, object]:
    return obj(doc.get(key), f"{where}.{key}")


def get_list(doc: dict[str, object], key: str, where: str) -> list[object]:
    value = doc.get(key)
    if not isinstance(value, list):
        malformed(f"{where}.{key}", "is not a JSON list")
    return value


def get_str(doc: dict[str, object], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        malformed(f"{where}.{key}", "is not a string")
    return value
