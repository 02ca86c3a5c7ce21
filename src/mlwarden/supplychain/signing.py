"""Model signatures in the OpenSSF model-signing (OMS) format, made and checked without ``model_signing``.

A signature is a Sigstore bundle (v0.3 JSON) holding a DSSE envelope, whose payload is an in-toto v1
statement (predicate ``https://model_signing/signature/v1.0``) listing the SHA-256 of every file of the
model. ``model_signing verify key`` accepts what ``sign_model`` writes, and ``verify_model`` accepts what
``model_signing sign key`` writes for a files serialization with SHA-256 (docs/signing.md).

The workspace signs models with its own ECDSA P-256 key (``keys/model-signing.pem``), not the Ed25519
checkpoint key: ``model_signing``'s key verifier accepts elliptic-curve keys on P-256, P-384 and P-521
only, so an Ed25519 signature would be unverifiable by the reference tool.

    digests = digest_model(Path("model/"))
    bundle = sign_model(Path("model/"), key, digests=digests)
    verify_model(Path("model/"), bundle, key.public_key())   # IntegrityError names what differs
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.audit.keys import load_ec_private_key, save_private_key
from mlwarden.errors import AlreadyExists, ConfigError, InputError, IntegrityError, NotFound
from mlwarden.supplychain._bundle import open_bundle, seal, signature_algorithm
from mlwarden.supplychain._files import (
    GIT_PATHS,
    SINGLE_FILE,
    FileDigest,
    UnsupportedModel,
    digest_model,
    digest_tree,
    is_safe_path,
    is_sha256_hex,
    sort_key,
)
from mlwarden.supplychain._statement import Statement, decode_statement, encode_statement

__all__ = [
    "MODEL_KEY_FILE",
    "FileDigest",
    "digest_model",
    "load_or_create_model_key",
    "sign_model",
    "signed_digests",
    "verify_model",
]

MODEL_KEY_FILE = "model-signing.pem"  # in the workspace's keys folder, beside the checkpoint key
_LISTED = 5  # files named per kind of difference in an error message


def sign_model(path: Path, key: ec.EllipticCurvePrivateKey, *, digests: Sequence[FileDigest] | None = None) -> str:
    """The signature bundle (JSON text) of the model at ``path``, a file or a folder.

    With ``digests`` (from ``digest_model``, e.g. stored when the model was registered) no file is read:
    ``path`` then only gives the model's name. ``ConfigError`` when ``key`` is not on P-256/384/521.
    """
    signature_algorithm(key.public_key())
    files = digest_model(path) if digests is None else _checked(digests)
    name = path.name or path.resolve().name
    return seal(encode_statement(name, files, GIT_PATHS), key)


def verify_model(path: Path, bundle: str, public_key: ec.EllipticCurvePublicKey) -> list[FileDigest]:
    """Check that ``bundle`` is a signature by ``public_key`` and that the model at ``path`` is exactly
    what it signed; return the signed digests, sorted.

    ``IntegrityError`` names the problem: a malformed bundle, a bad signature or another key, a file
    changed, added or missing, or a symbolic link or special file in the model.
    """
    statement = _open(bundle, public_key)
    try:
        actual = digest_tree(path, ignored=(*GIT_PATHS, *statement.ignored))
    except UnsupportedModel as exc:
        raise IntegrityError(f"{exc.message}; the signed model had none", hint=_CHANGED_HINT) from None
    _compare(path, statement.digests, actual)
    return sorted(statement.digests, key=lambda d: sort_key(d.path))


def signed_digests(bundle: str, public_key: ec.EllipticCurvePublicKey) -> list[FileDigest]:
    """The file digests that ``bundle`` signs, sorted, once its signature verifies with ``public_key``
    (to compare with stored digests without the files); ``IntegrityError`` otherwise."""
    return sorted(_open(bundle, public_key).digests, key=lambda d: sort_key(d.path))


def load_or_create_model_key(keys_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The workspace's model-signing key (``keys_dir/model-signing.pem``), made on first use.

    A new key is ECDSA P-256 in PKCS#8 PEM, mode 0600, linked into place so that when several processes
    race to make it, one key wins and all of them use it. ``ConfigError`` when the file is exposed to
    others or is not an EC key on a curve ``model_signing`` verifies.
    """
    path = keys_dir / MODEL_KEY_FILE
    try:
        return _load_model_key(path)
    except NotFound:
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        keys_dir.mkdir(mode=0o700, exist_ok=True)
        save_private_key(key, path)
    except AlreadyExists:
        return _load_model_key(path)  # another process made it first: theirs wins
    except OSError as exc:
        raise ConfigError(
            f"cannot create the model-signing key in {keys_dir}: {exc.strerror}", hint="check the workspace path"
        ) from None
    return key


def _load_model_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = load_ec_private_key(path)
    try:
        signature_algorithm(key.public_key())
    except ConfigError:
        raise ConfigError(
            f"{path} is an EC key on {key.curve.name}; model signatures need P-256, P-384 or P-521",
            hint="move it away; a new P-256 key is made on the next signing",
        ) from None
    return key


def _open(bundle: str, public_key: ec.EllipticCurvePublicKey) -> Statement:
    return decode_statement(open_bundle(bundle, public_key))


def _checked(digests: Sequence[FileDigest]) -> list[FileDigest]:
    """Given digests, held to what ``digest_model`` makes (they are signed as they are)."""
    single = len(digests) == 1 and digests[0].path == SINGLE_FILE
    for d in digests:
        if not (single or is_safe_path(d.path)) or not is_sha256_hex(d.sha256):
            raise InputError(f"cannot sign digest {d!r}", hint=_DIGESTS_HINT)
    if not digests or len({d.path for d in digests}) != len(digests):
        raise InputError("cannot sign an empty list of digests or one naming a file twice", hint=_DIGESTS_HINT)
    return sorted(digests, key=lambda d: sort_key(d.path))


def _compare(path: Path, signed: Sequence[FileDigest], actual: Sequence[FileDigest]) -> None:
    want, have = {d.path: d.sha256 for d in signed}, {d.path: d.sha256 for d in actual}
    if (SINGLE_FILE in want) != (SINGLE_FILE in have) and have:
        signed_kind = "one file" if SINGLE_FILE in want else "a folder"
        raise IntegrityError(
            f"the signature is for {signed_kind}, but {path} is not", hint="verify the path that was signed"
        )
    problems = [
        _listed("changed", sorted((p for p in want.keys() & have.keys() if want[p] != have[p]), key=sort_key)),
        _listed("added", sorted(have.keys() - want.keys(), key=sort_key)),
        _listed("missing", sorted(want.keys() - have.keys(), key=sort_key)),
    ]
    if any(problems):
        raise IntegrityError(
            f"model {path} does not match its signature: " + "; ".join(p for p in problems if p),
            hint=_CHANGED_HINT,
        )


def _listed(kind: str, paths: list[str]) -> str:
    if not paths:
        return ""
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return f"{kind}: " + ", ".join(paths[:_LISTED]) + more


_DIGESTS_HINT = "pass the digests that digest_model returned"
_CHANGED_HINT = "the model was changed after signing: do not use it; restore it from a trusted copy, or sign it again"
