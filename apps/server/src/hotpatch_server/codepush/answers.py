"""What the CodePush routes answer, typed (the CodePush device protocol's own spelling).

``react-native-code-push`` 9 (code-push SDK 4) reads snake_case
(:class:`CheckAnswer`); the SDK 2.x of older clients reads camelCase, with
``downloadURL`` and the binary range in ``appVersion``
(:class:`LegacyCheckAnswer`). A field left ``None`` is left out of the JSON,
as CodePush's own server leaves it out. These are the protocol's documents,
not HotPatch's: nothing in them is signed, and a CodePush device verifies
only what it is told to (docs/howto/codepush.md).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CheckAnswer",
    "LegacyCheckAnswer",
    "LegacyUpdateInfo",
    "ReportAnswer",
    "UpdateInfo",
    "legacy",
]


class UpdateInfo(msgspec.Struct, omit_defaults=True, frozen=True):
    """Whether a package is available to the device, and where it is."""

    is_available: bool
    #: A release exists, but only for a newer binary (``target_binary_range`` says which).
    update_app_version: bool
    should_run_binary_version: bool
    #: The device's binary version, sent back as the device sent it.
    app_version: str
    target_binary_range: str
    download_url: str | None = None
    package_hash: str | None = None
    package_size: int | None = None
    label: str | None = None
    description: str | None = None
    is_mandatory: bool | None = None


class CheckAnswer(msgspec.Struct, frozen=True):
    """``GET /v0.1/public/codepush/update_check``."""

    update_info: UpdateInfo


class LegacyUpdateInfo(
    msgspec.Struct,
    omit_defaults=True,
    frozen=True,
    rename={
        "is_available": "isAvailable",
        "update_app_version": "updateAppVersion",
        "should_run_binary_version": "shouldRunBinaryVersion",
        "app_version": "appVersion",
        "download_url": "downloadURL",
        "package_hash": "packageHash",
        "package_size": "packageSize",
        "is_mandatory": "isMandatory",
    },
):
    """:class:`UpdateInfo` as SDK 2.x reads it: ``appVersion`` is the range a binary needs."""

    is_available: bool
    update_app_version: bool
    should_run_binary_version: bool
    app_version: str
    download_url: str | None = None
    package_hash: str | None = None
    package_size: int | None = None
    label: str | None = None
    description: str | None = None
    is_mandatory: bool | None = None


class LegacyCheckAnswer(msgspec.Struct, frozen=True, rename={"update_info": "updateInfo"}):
    """``GET /updateCheck`` of the legacy API."""

    update_info: LegacyUpdateInfo


class ReportAnswer(msgspec.Struct, omit_defaults=True, frozen=True):
    """A deploy or download report: whether it was recorded, and if it was a repeat."""

    recorded: bool
    duplicate: bool | None = None


def legacy(info: UpdateInfo) -> LegacyUpdateInfo:
    """Spell a current ``update_info`` as the legacy SDK reads it.

    The old SDK has no ``target_binary_range``: it reads ``appVersion``, which
    carries the range a newer binary needs when ``updateAppVersion`` is set.
    """
    return LegacyUpdateInfo(
        is_available=info.is_available,
        update_app_version=info.update_app_version,
        should_run_binary_version=info.should_run_binary_version,
        app_version=info.target_binary_range,
        download_url=info.download_url,
        package_hash=info.package_hash,
        package_size=info.package_size,
        label=info.label,
        description=info.description,
        is_mandatory=info.is_mandatory,
    )
