"""A node's id is never given again (migration 0010): not to the next file written after the newest one
was deleted, which audit rows about the first would then name, and not to a folder made where another
process still has the old one in its folder cache, which would then find the new folder's files."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from server.config import load_settings
from server.db.models import audit_t
from server.instance import open_instance
from server.testing import LiveServer, TestInstance


def test_a_deleted_files_id_goes_to_no_other_file(
    live_server: LiveServer, dav: httpx.Client, instance_dir: TestInstance
) -> None:
    inst = live_server.instance
    root_id = inst.accounts.get(instance_dir.user).root_id
    assert dav.put("compte-rendu-dupont.pdf", content=b"Dupont").status_code == 201
    assert dav.get("compte-rendu-dupont.pdf").status_code == 200
    first = inst.tree.resolve(root_id, ["compte-rendu-dupont.pdf"])
    assert first is not None
    assert dav.delete("compte-rendu-dupont.pdf").status_code == 204  # the newest node goes
    assert dav.put("compte-rendu-martin.pdf", content=b"Martin").status_code == 201
    second = inst.tree.resolve(root_id, ["compte-rendu-martin.pdf"])
    assert second is not None and second.id > first.id
    assert dav.request("MKCOL", "Martin/").status_code == 201
    folder = inst.tree.resolve(root_id, ["Martin"])
    assert folder is not None and folder.id > second.id
    # What the audit log says of Dupont's file names no file of Martin's.
    assert inst.flush_audit()
    with inst.db.read() as tx:
        read = tx.all(select(audit_t.c.node_id).where(audit_t.c.action == "file.read"))
    assert [row.node_id for row in read] == [first.id]


def test_a_folder_cached_by_another_process_does_not_stand_for_a_new_one(
    live_server: LiveServer, instance_dir: TestInstance
) -> None:
    here = live_server.instance
    elsewhere = open_instance(load_settings(instance_dir.config_path))  # as the CLI or a second server would
    try:
        root = here.tree.get(here.accounts.get(instance_dir.user).root_id)
        dupont = here.tree.mkdir(root, "Dupont")  # the newest node
        assert here.tree.resolve_below(root.id, root.org_id, ["Dupont", "irm.pdf"]) == [dupont]  # Dupont cached

        # Another process deletes Dupont and makes Martin and a file in it.
        elsewhere.tree.delete(elsewhere.tree.get(dupont.id))
        martin = elsewhere.tree.mkdir(elsewhere.tree.get(root.id), "Martin")
        upload = elsewhere.tree.upload(martin, "irm.pdf", expected_size=6)
        upload.write(b"Martin")
        upload.finish()

        # Within the cache's second, this process still takes Dupont for a folder: it finds nothing in it
        # (with Dupont's id given to Martin, it found Martin's file).
        assert here.tree.resolve_below(root.id, root.org_id, ["Dupont", "irm.pdf"]) == [dupont]
        assert martin.id != dupont.id
    finally:
        elsewhere.close()
