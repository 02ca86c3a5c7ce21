"""The Sigstore bundle (v0.3, JSON) that carries a model signature made with a key, as ``model_signing``
writes it for ``sign key``::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": <hex SHA-256 of the public key's PEM>}, "tlogEntries": []},
     "dsseEnvelope": {"payload": <base64 statement>, "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": <base64 DER ECDSA signature>, "keyid": ""}]}}

The signature is ECDSA over the DSSE v1 pre-authentication encoding of the payload
(https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md), with the hash that goes with the
curve (P-256: SHA-256, P-384: SHA-384, P-521: SHA-512), the curves ``model_signing``'s key verifier
accepts. Bundle layout: https://docs.sigstore.dev/about/bundle/. The key hint only names the key; the
signature check is what proves it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.errors import ConfigError, IntegrityError
from mlwarden.supplychain._statement import get_list, get_obj, get_str, loads_strict, malformed, obj

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_BUNDLE_CHARS = 16 * 1024 * 1024  # ~100k files' worth; bounds what a planted bundle costs to parse

_HASH_BY_CURVE: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers, type and payload both bound."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """``model_signing``'s public key hint: hex SHA-256 of the key's SubjectPublicKeyInfo PEM."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def signature_algorithm(public_key: object) -> ec.ECDSA:
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in _HASH_BY_CURVE:
        return ec.ECDSA(_HASH_BY_CURVE[public_key.curve.name]())
    raise ConfigError(
        "model signatures need an ECDSA key on P-256, P-384 or P-521 (what model_signing verifies)",
        hint="use the workspace's model-signing key (keys/model-signing.pem)",
    )


def seal(payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    """The bundle JSON text holding ``payload`` (an in-toto statement) signed with ``key``."""
    public_key = key.public_key()
    signature = key.sign(pae(PAYLOAD_TYPE, payload), signature_algorithm(public_key))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(public_key)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2)


def open_bundle(bundle: str, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The payload of ``bundle`` once its signature verifies with ``public_key``; else ``IntegrityError``."""
    algorithm = signature_algorithm(public_key)
    if not isinstance(bundle, str) or len(bundle) > MAX_BUNDLE_CHARS:
        malformed("the bundle", f"is not text of at most {MAX_BUNDLE_CHARS} characters")
    doc = obj(loads_strict(bundle, "the bundle"), "the bundle")
    if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        malformed("the bundle", f"has mediaType {doc.get('mediaType')!r}, not {BUNDLE_MEDIA_TYPE}")
    material = get_obj(doc, "verificationMaterial", "the bundle")
    if "publicKey" not in material:
        malformed("verificationMaterial", "names no public key (was the model signed with a certificate or Sigstore?)")
    hint = get_obj(material, "publicKey", "verificationMaterial").get("hint")
    if hint is not None and hint != key_hint(public_key):
        raise IntegrityError(
            f"the model was signed with another key (key hint {str(hint)[:16]}..., expected "
            f"{key_hint(public_key)[:16]}...)",
            hint="verify with the public key of the workspace that signed the model; otherwise do not trust it",
        )
    envelope = get_obj(doc, "dsseEnvelope", "the bundle")
    payload_type = get_str(envelope, "payloadType", "dsseEnvelope")
    if payload_type != PAYLOAD_TYPE:
        malformed("dsseEnvelope", f"has payloadType {payload_type!r}, not {PAYLOAD_TYPE}")
    payload = _base64(get_str(envelope, "payload", "dsseEnvelope"), "dsseEnvelope.payload")
    signatures = get_list(envelope, "signatures", "dsseEnvelope")
    if len(signatures) != 1:
        malformed("dsseEnvelope", f"has {len(signatures)} signatures, not one")
    sig = _base64(get_str(obj(signatures[0], "dsseEnvelope.signatures[0]"), "sig", "signatures[0]"), "the signature")
    try:
        public_key.verify(sig, pae(payload_type, payload), algorithm)
    except InvalidSignature:
        raise IntegrityError(
            "the model signature does not verify: the signed statement or the signature was changed, or another "
            "key signed it",
            hint="do not use this model; fetch the model and its signature again from a trusted source",
        ) from None
    return payload


def _base64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        malformed(where, "is not base64")
