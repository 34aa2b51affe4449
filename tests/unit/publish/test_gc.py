from __future__ import annotations

from pathlib import Path

from codebase_mcp.publish.gc import STALE_SECONDS, Keep, LocalTag, StoreEntry, plan_gc

NOW = 1_800_000_000.0
CURRENT = "localhost/codebase-mcp-server:" + "a" * 32
OLD = "localhost/codebase-mcp-server:" + "b" * 32
OTHER_PG = "localhost/codebase-mcp-postgres:" + "c" * 32


def keep(unknown: frozenset[str] = frozenset()) -> Keep:
    return Keep(
        refs=frozenset({CURRENT}),
        unknown_names=unknown,
        sha256=frozenset({"1" * 64}),
        layer_keys=frozenset({"r" * 64}),
    )


def entry(store: Path, rel: str, age: float = 0.0) -> StoreEntry:
    return StoreEntry(store / rel, 10, NOW - age)


def test_images_not_current_go_and_foreign_tags_stay(tmp_path: Path) -> None:
    tags = [
        LocalTag(CURRENT, "i1", 100),
        LocalTag(OLD, "i2", 200),
        LocalTag(OTHER_PG, "i3", 300),
        LocalTag("localhost/codebase-mcp-server:dev", "i4", 400),  # not a builder tag
    ]
    removals = plan_gc(keep(), tags, tmp_path, [], NOW)
    assert [(r.kind, r.target, r.size) for r in removals] == [
        ("image", OTHER_PG, 300),
        ("image", OLD, 200),
    ]


def test_an_image_with_unknown_current_ref_keeps_every_build(tmp_path: Path) -> None:
    tags = [LocalTag(CURRENT, "i1", 1), LocalTag(OLD, "i2", 1), LocalTag(OTHER_PG, "i3", 1)]
    removals = plan_gc(keep(frozenset({"postgres"})), tags, tmp_path, [], NOW)
    assert [r.target for r in removals] == [OLD]


def test_store_entries(tmp_path: Path) -> None:
    stale = STALE_SECONDS + 1
    entries = [
        entry(tmp_path, "sha256/" + "1" * 64),  # locked: stays
        entry(tmp_path, "sha256/" + "2" * 64),  # not locked: goes
        entry(tmp_path, "sha256/.partial-x"),  # a download in progress: stays
        entry(tmp_path, "sha256/.partial-y", stale),  # abandoned: goes
        entry(tmp_path, "rootfs/" + "r" * 64 + ".tar"),  # an older builder's: goes
        entry(tmp_path, "layers/" + "r" * 64 + ".json"),  # a current layer: stays
        entry(tmp_path, "layers/" + "s" * 64 + ".json"),
        entry(tmp_path, "trees/" + "r" * 64),  # unpacked for a current layer: stays
        entry(tmp_path, "trees/" + "s" * 64),
        entry(tmp_path, "trees/.unpacking-1"),  # maybe being unpacked: stays
        entry(tmp_path, "trees/.unpacking-2", stale),
        entry(tmp_path, "builds/" + "a" * 64 + ".json"),  # its image is current: stays
        entry(tmp_path, "builds/" + "b" * 64 + ".json"),
        entry(tmp_path, "tmp/context-1"),  # maybe a running build: stays
        entry(tmp_path, "tmp/context-2", stale),
        entry(tmp_path, "rootfs-abc", stale),
        entry(tmp_path, "notes", stale),  # not ours: stays
    ]
    removals = plan_gc(keep(), [LocalTag(CURRENT, "i", 1)], tmp_path, entries, NOW)
    assert sorted((r.kind, str(Path(r.target).relative_to(tmp_path))) for r in removals) == [
        ("layer", "layers/" + "s" * 64 + ".json"),
        ("record", "builds/" + "b" * 64 + ".json"),
        ("rootfs", "rootfs/" + "r" * 64 + ".tar"),
        ("store", "sha256/.partial-y"),
        ("store", "sha256/" + "2" * 64),
        ("tree", "trees/.unpacking-2"),
        ("tree", "trees/" + "s" * 64),
        ("workdir", "rootfs-abc"),
        ("workdir", "tmp/context-2"),
    ]
