"""Supply-chain artefacts of a model: signatures in the OpenSSF model-signing format (docs/signing.md).

from mlwarden.supplychain import digest_model, load_or_create_model_key, sign_model, verify_model
key = load_or_create_model_key(workspace_keys_dir)
bundle = sign_model(Path("model/"), key)
verify_model(Path("model/"), bundle, key.public_key())   # IntegrityError when anything differs
"""

from mlwarden.supplychain.signing import (
    MODEL_KEY_FILE,
    FileDigest,
    digest_model,
    load_or_create_model_key,
    sign_model,
    signed_digests,
    verify_model,
)

__all__ = [
    "MODEL_KEY_FILE",
    "FileDigest",
    "digest_model",
    "load_or_create_model_key",
    "sign_model",
    "signed_digests",
    "verify_model",
]
