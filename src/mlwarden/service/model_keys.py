"""The workspace's model-signing key (ECDSA P-256, beside the checkpoint key; made on first use)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.service.context import ServiceContext
from mlwarden.supplychain.signing import load_or_create_model_key


def model_signing_key(ctx: ServiceContext) -> ec.EllipticCurvePrivateKey:
    return load_or_create_model_key(ctx.paths.resolve(ctx.config.key_file).parent)


def model_public_key(ctx: ServiceContext) -> ec.EllipticCurvePublicKey:
    return model_signing_key(ctx).public_key()


def model_public_key_pem(ctx: ServiceContext) -> str:
    """What anyone verifying outside mlwarden needs, e.g. `model_signing verify key --public_key`."""
    pem = model_public_key(ctx).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()
