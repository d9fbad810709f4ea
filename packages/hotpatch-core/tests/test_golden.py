from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hotpatch_core.cohort import bucket
from hotpatch_core.keys import PublicKey, SigningKey
from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity, HighWaterMark, verify_release
from hotpatch_core.trust import load_trust_root
from hotpatch_core.versions import Version
from hotpatch_core.wire import parse_time


def _golden() -> ModuleType:
    path = Path(__file__).with_name("golden.py")
    spec = importlib.util.spec_from_file_location("hotpatch_golden", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GOLDEN = _golden()
VECTORS: Path = GOLDEN.VECTORS


@pytest.mark.parametrize("name", sorted(GOLDEN.generate()))
def test_code_reproduces_committed_vectors(name: str) -> None:
    """Every committed vector file is exactly what the code produces today."""
    committed = VECTORS / name
    assert committed.exists(), f"missing vector {name}: run golden.py"
    assert committed.read_bytes() == GOLDEN.generate()[name], f"{name} drifted: format change?"


def test_vectors_verify_independently() -> None:
    """Read back as a native SDK would, the committed vectors verify and agree."""
    for case in json.loads((VECTORS / "cohort.json").read_text()):
        assert bucket(case["deviceId"], case["salt"]) == case["bucket"]
    keys = json.loads((VECTORS / "keys.json").read_text())
    key = SigningKey.from_pem(keys["privateKeyPem"])
    assert key.seed.hex() == keys["seedHex"]
    assert PublicKey.from_pem(keys["publicKeyPem"]).key_id == keys["keyId"]
    spec = json.loads((VECTORS / "release.verify.json").read_text())
    root = load_trust_root((VECTORS / "trust-root.envelope.json").read_bytes().rstrip(b"\n"))
    device = DeviceIdentity(
        spec["device"]["appId"],
        Platform(spec["device"]["platform"]),
        spec["device"]["channel"],
        Version.parse(spec["device"]["nativeVersion"]),
    )
    mark = HighWaterMark(
        spec["highWaterMark"]["epoch"], spec["highWaterMark"]["sequence"], "0" * 64
    )
    envelope = (VECTORS / "release.envelope.json").read_bytes().rstrip(b"\n")
    release = verify_release(envelope, root, device, mark, parse_time(spec["now"]))
    assert release.manifest_id == spec["expect"]["manifestId"]
    assert sorted(release.signed_by) == spec["expect"]["signedBy"]
