"""build_artifact_store: backends chosen by URI, refused in the words settings use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tabpilot.backends import Registry, parse_uri
from tabpilot.errors import InvalidInput, MissingDependency
from tabpilot.storage import build_artifact_store
from tabpilot.storage.local import LocalArtifactStore
from tabpilot.storage.registry import ARTIFACT_STORES, s3_location


def test_registry_builds_local_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = build_artifact_store(str(tmp_path / "plain"))
    assert isinstance(plain, LocalArtifactStore) and plain.root == tmp_path / "plain"
    from_uri = build_artifact_store(f"file://{tmp_path}/uri")
    assert isinstance(from_uri, LocalArtifactStore) and from_uri.root == tmp_path / "uri"
    upper = build_artifact_store(f"FILE://localhost{tmp_path}/upper")
    assert isinstance(upper, LocalArtifactStore) and upper.root == tmp_path / "upper"
    monkeypatch.chdir(tmp_path)
    relative = build_artifact_store("rel/dir")
    assert isinstance(relative, LocalArtifactStore) and relative.root == tmp_path / "rel" / "dir"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "gs://bucket",
            'unsupported scheme "gs"; use a directory path, file:///PATH or s3://BUCKET/PREFIX',
        ),
        ("s3://b/prefix", '"s3://b/prefix" names no valid bucket: write s3://BUCKET/PREFIX'),
        ("s3://Bucket_1", "names no valid bucket"),
        ("s3://user:pw@bucket/x", '"s3://user:***@bucket/x" names no valid bucket'),
        ("s3://bucket/a?region=eu-west-1", "takes none: the region, credentials and endpoint"),
        ("s3://bucket/a/../b", "has an unusable key prefix"),
        ("file://server/share", "names a remote host"),
        ("", "The artifact directory is empty"),
    ],
)
def test_unusable_uris_say_what_to_use(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        build_artifact_store(uri)
    assert caught.value.message.startswith("TABPILOT_ARTIFACT_URI: ")
    assert caught.value.details["setting"] == "TABPILOT_ARTIFACT_URI"


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert ARTIFACT_STORES.problem(str(blocker / "store")) == (
        f'"{blocker / "store"}" cannot be created because "{blocker}" is not a directory; '
        "choose a directory this process can write"
    )


def test_a_planned_backend_is_replaced_by_the_real_one_and_nothing_else_changes() -> None:
    """How a later backend joins: it registers its scheme; settings ask the same registry."""
    things: Registry[str] = Registry("thing store", setting="TABPILOT_THING_URI")
    things.register("mem", name="memory", example="mem://", build=lambda uri: "memory")
    things.plan("cloud", name="the cloud store", example="cloud://BUCKET")
    assert things.hint == "use mem://"
    assert "is not available in this version" in str(things.problem("cloud://b"))

    things.register(
        "cloud",
        name="the cloud store",
        example="cloud://BUCKET",
        build=lambda uri: f"cloud {uri.netloc}",
        check=lambda uri: None if uri.netloc else f'"{uri.text}" names no bucket',
    )
    assert things.build("cloud://b") == "cloud b"
    assert things.hint == "use mem:// or cloud://BUCKET"
    assert things.problem("cloud://") == '"cloud://" names no bucket'
    with pytest.raises(InvalidInput, match=r'^TABPILOT_THING_URI: "cloud://" names no bucket$'):
        things.build("cloud://")
    with pytest.raises(ValueError, match="already served"):
        things.register("mem", name="another", example="mem://", build=lambda uri: "x")


def test_uris_are_parsed_in_one_place_and_passwords_never_shown() -> None:
    uri = parse_uri(" Local://?workers=2&warm=0&workers=3 ")
    assert (uri.scheme, uri.param("workers"), uri.param("warm"), uri.param("x", "d")) == (
        "local",
        "3",
        "0",
        "d",
    )
    secret = parse_uri("postgresql://u:pw@db:5432/tabpilot")
    assert (secret.netloc, secret.path, secret.shown) == (
        "u:pw@db:5432",
        "/tabpilot",
        "postgresql://u:***@db:5432/tabpilot",
    )
    assert parse_uri("some/dir").scheme == ""
    with pytest.raises(InvalidInput, match=r"\*\*\*") as caught:
        parse_uri("postgresql://u:pw@[db/x")
    assert "pw" not in caught.value.message
    with pytest.raises(InvalidInput, match=r"^TABPILOT_ARTIFACT_URI: .* is not a valid URI"):
        build_artifact_store("file://[x/y")


def test_s3_uris_name_a_bucket_and_a_prefix() -> None:
    """Checking an s3:// URI touches nothing: no boto3 call, no network."""
    assert s3_location("s3://my-bucket") == ("my-bucket", "")
    assert s3_location("s3://my-bucket/") == ("my-bucket", "")
    assert s3_location("S3://my.bucket/tabpilot/prod/") == ("my.bucket", "tabpilot/prod")
    assert s3_location("s3://my-bucket/with%20space") == ("my-bucket", "with space")
    assert ARTIFACT_STORES.problem("s3://my-bucket/tabpilot") is None


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # an import of boto3 now fails
    monkeypatch.delitem(sys.modules, "tabpilot.storage.s3", raising=False)
    with pytest.raises(MissingDependency, match=re.escape("pip install 'tabpilot[aws]'")):
        build_artifact_store("s3://my-bucket/prefix")
