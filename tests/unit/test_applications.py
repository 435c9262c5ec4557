"""补录 applications over a real temporary ledger: numbers, four eyes,
self-approval of empty fields, holding, staleness, decline, reject/reopen."""

from __future__ import annotations

import datetime as dt

import pytest

from agent import application_rules as rules
from agent import applications as apps
from agent.amend import AmendError
from agent.errors import IllegalTransition
from agent.ledger import Ledger
from agent.model import Invoice, State
from agent.trail import verify_chain
from agent.ledger.trail import TrailReader
from tests.unit.test_amend import DESTS, SETTINGS, TODAY, T0, add_doc, invoice

T1 = "2024-06-01T01:00:00.000000Z"
ALICE = apps.Operator("cli:alice (sudo → fapiao)", "alice")
BOB = apps.Operator("cli:bob (sudo → fapiao)", "bob")
ROOT = apps.Operator("cli:root (sudo → fapiao)", "root")


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


def file_amend(ledger, doc_id, values, *, who=ALICE, self_approve=True, now=T1, reason="paper copy"):
    return apps.file_amend(ledger, doc_id, values, reason=reason, settings=SETTINGS, destinations=DESTS,
                           today=TODAY, now=now, filer=who, self_approve_empty=self_approve)


def approve(ledger, number, who=BOB, reason=None):
    return apps.approve(ledger, number, reason=reason, settings=SETTINGS, destinations=DESTS, today=TODAY,
                        now=T1, decider=who)


def decline(ledger, number, who=BOB, reason="not on the paper"):
    return apps.decline(ledger, number, reason=reason, settings=SETTINGS, destinations=DESTS, today=TODAY,
                        now=T1, decider=who)


def app_events(ledger, doc_id, number):
    return [e for e in ledger.events(doc_id) if isinstance(e.details, dict) and e.details.get("application") == number]


def test_a_conflict_with_the_xml_waits_for_a_second_person_and_holds_the_document(ledger):
    doc_id = add_doc(ledger, invoice(), "a")
    assert ledger.get(doc_id).state == "queued"
    out = file_amend(ledger, doc_id, {"date": "2024-05-20"})
    assert (out.number, out.state, out.approval) == ("BL-20240601-0001", "pending", "other")
    assert out.changes["date"] == {"old": "2024-05-06", "old_source": "xml", "new": "2024-05-20",
                                   "kind": "conflict", "carried": {"xml": "2024-05-06"}}
    doc = ledger.get(doc_id)
    assert doc.state == "quarantined" and doc.invoice_date == "2024-05-06"   # nothing applied yet
    held = doc.problems[0]
    assert (held["code"], held["field"]) == ("application-pending", "date")
    assert "BL-20240601-0001" in held["message"] and "the 数电 XML" in held["message"]
    assert "alice" in held["message"] and "补录申请" in held["message_zh"]

    for who in (ALICE, apps.Operator("cli:alice", "alice")):   # with or without sudo: the same person
        with pytest.raises(apps.NeedsAnotherPerson, match="other than its filer alice"):
            approve(ledger, out.number, who=who)
    assert ledger.get(doc_id).state == "quarantined" and ledger.application(out.number)["state"] == "pending"

    done = approve(ledger, out.number, reason="checked the paper")
    assert (done.state, done.document_state) == ("approved", "queued")
    doc = ledger.get(doc_id)
    assert doc.invoice_date == "2024-05-20" and doc.fields["sources"]["date"] == "manual"
    assert doc.fields["replaced"] == {"date": {"xml": "2024-05-06"}}
    row = ledger.application(out.number)
    assert (row["decider"], row["decided_by"], row["decision_reason"], row["outcome"]) == (
        "bob", BOB.actor, "checked the paper", "queued")
    events = app_events(ledger, doc_id, out.number)
    assert [e.details.get("action") for e in events if e.details.get("action")] == ["filed", "approved"]
    assert {e.actor for e in events} == {ALICE.actor, BOB.actor}
    assert events[0].details["reason"] == "paper copy" and events[0].details["filer"] == "alice"


def test_root_acting_as_itself_is_one_person_for_four_eyes(ledger):
    doc_id = add_doc(ledger, invoice(), "a")
    out = file_amend(ledger, doc_id, {"total": "114.00"}, who=ROOT)
    with pytest.raises(apps.NeedsAnotherPerson):
        approve(ledger, out.number, who=apps.Operator("cli:root", "root"))


def test_filling_an_empty_field_is_approved_by_its_filer_unless_the_config_says_no(ledger):
    doc_id = add_doc(ledger, invoice(number=None), "a")
    assert ledger.get(doc_id).state == "quarantined"
    out = file_amend(ledger, doc_id, {"number": "24110000000012345678"})
    assert (out.state, out.approval, out.document_state) == ("approved", "self", "queued")
    assert out.changes["number"]["kind"] == "fill"
    actions = [e.details.get("action") for e in app_events(ledger, doc_id, out.number)]
    assert actions[:2] == ["filed", "approved"] and len(actions) >= 3   # then the amend itself
    assert ledger.application(out.number)["decider"] == "alice"

    other = add_doc(ledger, invoice(number=None, seller_tax_id="91110108MA01ABCD2H"), "b")
    strict = file_amend(ledger, other, {"number": "24110000000012345679"}, self_approve=False)
    assert (strict.state, strict.approval) == ("pending", "other")
    with pytest.raises(apps.NeedsAnotherPerson, match="self_approve_empty_fields"):
        approve(ledger, strict.number, who=ALICE)
    assert approve(ledger, strict.number).document_state == "queued"


def test_a_correction_of_an_ocr_reading_needs_a_second_person_too(ledger):
    inv = invoice()
    inv.fields["buyer_name"] = inv.fields["buyer_name"].__class__("上海某某有限公", "ocr")
    doc_id = add_doc(ledger, inv, "a")
    out = file_amend(ledger, doc_id, {"buyer_name": "上海某某有限公司"})
    assert out.changes["buyer_name"]["kind"] == "correction" and out.state == "pending"


def test_a_qr_that_failed_its_crc_is_not_authoritative():
    inv = Invoice()
    inv.offer("date", dt.date(2020, 8, 5), "qr")
    assert rules.classify(inv, {"date": dt.date(2026, 11, 1)})["date"]["kind"] == "conflict"
    assert rules.classify(inv, {"date": dt.date(2026, 11, 1)}, frozenset({"qr-crc"}))["date"]["kind"] == "correction"
    assert rules.classify(inv, {"date": None})["date"]["kind"] == "conflict"   # clearing it too
    assert rules.classify(inv, {"date": dt.date(2020, 8, 5)})["date"]["kind"] == "same"


def test_an_approved_override_stays_a_conflict_for_the_next_amend(ledger):
    doc_id = add_doc(ledger, invoice(), "a")
    approve(ledger, file_amend(ledger, doc_id, {"date": "2024-05-20"}).number)
    again = file_amend(ledger, doc_id, {"date": "2024-05-21"})
    assert again.changes["date"]["kind"] == "conflict" and again.changes["date"]["old_source"] == "manual"
    assert again.changes["date"]["carried"] == {"xml": "2024-05-06"}
    back = decline(ledger, again.number)
    assert back.document_state == "queued" and ledger.get(doc_id).invoice_date == "2024-05-20"
    # Back to what the XML says: no conflict, but it replaces an operator's value.
    assert file_amend(ledger, doc_id, {"date": "2024-05-06"}).changes["date"]["kind"] == "correction"


def test_numbers_are_per_day_from_the_ledger_rows(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as ledger:
        ids = [add_doc(ledger, invoice(number=None, check_code=str(i)), f"{i}") for i in range(3)]
        first = file_amend(ledger, ids[0], {"number": "24110000000012345601"}).number
        # 2024-06-01 16:30 UTC is already 2 June in China.
        late = file_amend(ledger, ids[1], {"number": "24110000000012345602"},
                          now="2024-06-01T16:30:00.000000Z").number
    with Ledger(path) as ledger:   # a new process (or a restored copy) goes on from the rows
        again = file_amend(ledger, ids[2], {"number": "24110000000012345603"}).number
    assert (first, late, again) == ("BL-20240601-0001", "BL-20240602-0001", "BL-20240601-0002")


def test_a_held_document_refuses_every_other_hand_and_a_stale_approval_is_refused(ledger):
    doc_id = add_doc(ledger, invoice(), "a")
    out = file_amend(ledger, doc_id, {"total": "114.00"})
    for act in (lambda: file_amend(ledger, doc_id, {"number": "24110000000012345670"}),
                lambda: apps.file_accept(ledger, doc_id, reason="x", destinations=DESTS, now=T1, filer=BOB),
                lambda: apps.file_reject(ledger, doc_id, reason="x", settings=SETTINGS, destinations=DESTS,
                                         today=TODAY, now=T1, filer=ALICE)):
        with pytest.raises(IllegalTransition, match=f"held by the pending application {out.number}"):
            act()
    assert [a["number"] for a in ledger.list_applications()] == [out.number]   # refusals file nothing
    # The document changes behind the application's back (an older version, a hand-edited ledger).
    doc = ledger.get(doc_id)
    inv = Invoice.from_dict(doc.fields)
    inv.set_manual("buyer_name", "别的公司")
    ledger.transition(doc_id, State.EXTRACTED, now=T1, actor="x", fields=inv.to_dict())
    ledger.transition(doc_id, State.QUARANTINED, now=T1, actor="x", problems=doc.problems)
    with pytest.raises(apps.StaleApplication, match="changed since it was filed.*decline"):
        approve(ledger, out.number)
    decline(ledger, out.number)
    with pytest.raises(apps.StaleApplication, match="already declined by cli:bob"):
        approve(ledger, out.number)
    assert ledger.get(doc_id).fields["buyer_name"] == "别的公司"


def test_decline_judges_the_document_again_with_its_own_values(ledger):
    doc_id = add_doc(ledger, invoice(date=dt.date(2020, 8, 5)), "a")
    assert ledger.get(doc_id).state == "quarantined"        # expired
    out = file_amend(ledger, doc_id, {"date": "2024-05-01"})
    assert out.document_state == "quarantined"
    done = decline(ledger, out.number)
    doc = ledger.get(doc_id)
    assert (done.state, doc.state, doc.invoice_date) == ("declined", "quarantined", "2020-08-05")
    codes = [p["code"] for p in doc.problems]
    assert "expired" in codes and "application-pending" not in codes
    with pytest.raises(AmendError, match="decline needs a reason"):
        decline(ledger, file_amend(ledger, doc_id, {"date": "2024-05-02"}).number, reason=" ")


def test_a_passing_copy_does_not_take_a_held_documents_place(ledger):
    held_id = add_doc(ledger, invoice(date=dt.date(2020, 8, 5)), "a")
    out = file_amend(ledger, held_id, {"date": "2024-05-01"})
    copy_id = add_doc(ledger, invoice(), "b")   # same invoice, passes
    assert ledger.get(held_id).state == "quarantined"
    assert ledger.get(copy_id).state == "duplicate" and ledger.get(copy_id).duplicate_of == held_id
    assert approve(ledger, out.number).document_state == "queued"


def test_reject_and_reopen_are_applications_decided_by_their_filer(ledger):
    doc_id = add_doc(ledger, invoice(seller_tax_id="91110108MA01ABCD2X"), "a")
    rej = apps.file_reject(ledger, doc_id, reason="vendor demo", settings=SETTINGS, destinations=DESTS,
                           today=TODAY, now=T1, filer=ALICE)
    assert (rej.state, rej.document_state) == ("approved", "rejected")
    with pytest.raises(AmendError, match="reopen needs a reason"):
        apps.file_reopen(ledger, doc_id, reason="", settings=SETTINGS, destinations=DESTS, today=TODAY,
                         now=T1, filer=BOB)
    back = apps.file_reopen(ledger, doc_id, reason="rejected the wrong one", settings=SETTINGS,
                            destinations=DESTS, today=TODAY, now=T1, filer=BOB)
    doc = ledger.get(doc_id)
    assert (back.number, back.document_state, doc.state) == ("BL-20240601-0002", "quarantined", "quarantined")
    assert doc.problems[0]["code"] == "reopened" and "bob" in doc.problems[0]["message"]
    assert "tax-id-check-digit" in {p["code"] for p in doc.problems}
    with pytest.raises(IllegalTransition, match="only rejected documents can be reopened"):
        apps.file_reopen(ledger, doc_id, reason="again", settings=SETTINGS, destinations=DESTS, today=TODAY,
                         now=T1, filer=BOB)


def test_a_reopened_document_whose_key_has_a_live_copy_becomes_its_duplicate(ledger):
    first = add_doc(ledger, invoice(), "a")
    second = add_doc(ledger, invoice(), "b")
    assert ledger.get(second).state == "duplicate"
    apps.file_reject(ledger, first, reason="x", settings=SETTINGS, destinations=DESTS, today=TODAY, now=T1,
                     filer=ALICE)
    # The duplicate took its place, held for a person: the invoice was rejected.
    assert ledger.get(second).state == "quarantined"
    assert ledger.get(second).problems[0]["code"] == "rejected-before"
    apps.file_reopen(ledger, first, reason="y", settings=SETTINGS, destinations=DESTS, today=TODAY, now=T1,
                     filer=ALICE)
    doc = ledger.get(first)
    assert (doc.state, doc.duplicate_of) == ("duplicate", second)


def test_a_held_duplicate_is_quarantined_not_queued_when_its_live_copy_goes(ledger):
    live = add_doc(ledger, invoice(), "a")
    dup = add_doc(ledger, invoice(), "b")
    out = file_amend(ledger, dup, {"buyer_name": "另一家公司"})
    assert ledger.get(dup).state == "duplicate" and ledger.get(dup).problems[0]["code"] == "application-pending"
    apps.file_reject(ledger, live, reason="x", settings=SETTINGS, destinations=DESTS, today=TODAY, now=T1,
                     filer=BOB)
    assert ledger.get(dup).state == "quarantined"             # held, never queued while pending
    # Approved, it is still a copy of an invoice a person rejected: it waits
    # for a person to accept it (`rejected-before`), never queued by itself.
    assert approve(ledger, out.number).document_state == "quarantined"
    assert ledger.get(dup).problems[0]["code"] == "rejected-before"
    apps.file_accept(ledger, dup, reason="the live copy was the wrong scan", destinations=DESTS, now=T1, filer=BOB)
    assert ledger.get(dup).state == "queued"


def test_the_trail_of_all_this_verifies(ledger):
    doc_id = add_doc(ledger, invoice(), "a")
    approve(ledger, file_amend(ledger, doc_id, {"date": "2024-05-20"}).number)
    reader = TrailReader(ledger)
    with reader.snapshot():
        assert list(verify_chain(reader.chain(), reader.head())) == []
    assert T0 < T1


def test_audit_ledger_finds_a_pending_application_whose_document_moved_on(ledger, tmp_path):
    from agent.audit import audit_ledger
    from agent.audit_rules import AuditSettings

    def not_held():
        return [v for v in audit_ledger(ledger, tmp_path / "vault", AuditSettings(destinations=DESTS),
                                        now=dt.datetime(2024, 6, 1, 2, tzinfo=dt.timezone.utc))
                if v.code == "application-not-held"]

    doc_id = add_doc(ledger, invoice(), "a")
    out = file_amend(ledger, doc_id, {"date": "2024-05-20"})
    assert not_held() == []
    # Moved on around the application (a hand-edited ledger, an older version).
    ledger.transition(doc_id, State.VALID, now=T1, actor="x", reason="around it")
    [found] = not_held()
    assert found.document == doc_id and out.number in found.message


def test_the_applications_migration_is_the_one_the_ledger_checks_for():
    from agent.ledger.applications import APPLICATIONS_SCHEMA
    from agent.ledger.schema import MIGRATIONS

    assert "CREATE TABLE applications" in MIGRATIONS[APPLICATIONS_SCHEMA - 1]


def test_filling_a_field_an_earlier_bl_cleared_is_no_fill(ledger):
    inv = invoice()
    inv.fields["buyer_name"] = inv.fields["buyer_name"].__class__("上海某某有限公", "ocr")
    doc_id = add_doc(ledger, inv, "a")
    approve(ledger, file_amend(ledger, doc_id, {"buyer_name": ""}).number)
    assert ledger.get(doc_id).fields["buyer_name"] is None
    again = file_amend(ledger, doc_id, {"buyer_name": "随便一家公司"})
    assert (again.changes["buyer_name"]["kind"], again.state) == ("correction", "pending")


def test_a_declined_amend_of_a_not_invoice_leaves_it_for_a_person_never_queued(ledger):
    doc_id, _ = ledger.add_document(sha256="n" * 64, size=10, media_type="pdf", source_kind="ingest", source="/in",
                                    original_name="trip.pdf", original_path="/in/trip.pdf", now=T0, actor="daemon:1")
    full = invoice()
    full.is_invoice, full.not_invoice_reason = False, "a trip list"
    from agent.pipeline import invoice_columns
    ledger.transition(doc_id, State.NOT_INVOICE, now=T0, actor="daemon:1", reason="a trip list",
                      **invoice_columns(full))
    out = file_amend(ledger, doc_id, {"total": "114.00"})
    assert out.state == "pending" and ledger.get(doc_id).state == "quarantined"
    assert decline(ledger, out.number).document_state == "quarantined"
    assert [p["code"] for p in ledger.get(doc_id).problems] == ["not-invoice"]


def test_filling_a_document_read_as_no_invoice_waits_for_a_second_person(ledger):
    # A trip list or a receipt is read as not_invoice, every field empty.
    # Filling them all is no 补录 of a scan's missing values: it makes an
    # invoice, and money to pay, out of it. One amender alone must not.
    from tests.unit.test_amend import GOOD

    doc_id, _ = ledger.add_document(sha256="d" * 64, size=10, media_type="pdf", source_kind="ingest",
                                    source="/in", original_name="trip.pdf", original_path="/in/trip.pdf",
                                    now=T0, actor="daemon:1")
    ledger.transition(doc_id, State.NOT_INVOICE, now=T0, actor="daemon:1", reason="not an invoice",
                      fields=Invoice(is_invoice=False, not_invoice_reason="trip list").to_dict(), problems=[])
    values = {name: str(value) for name, value in GOOD.items()}
    out = file_amend(ledger, doc_id, values)
    assert (out.state, out.approval) == ("pending", "other")
    assert ledger.get(doc_id).state != "queued"
    # Declined by the filer (anyone may decline): the document is left
    # quarantined, no longer in not_invoice. Filed again: still four eyes.
    decline(ledger, out.number, who=ALICE)
    assert ledger.get(doc_id).state == "quarantined"
    out = file_amend(ledger, doc_id, values)
    assert (out.state, out.approval) == ("pending", "other")
    with pytest.raises(apps.NeedsAnotherPerson):
        approve(ledger, out.number, who=ALICE)
    done = approve(ledger, out.number)
    assert done.document_state == "queued"
    # A scan's empty fields filled by one person stay self-approved (the default).
    scan = add_doc(ledger, invoice(number=None, total=None), "s")
    assert file_amend(ledger, scan, {"number": "12345678"}).approval == "self"


def test_filling_every_field_of_a_document_nothing_was_read_from_waits_for_a_second_person(ledger):
    # A blank page, an unreadable photo: no number and no amount came from
    # the file. One amender filling them all would make an invoice, and
    # money to pay, out of nothing.
    from tests.unit.test_amend import GOOD

    for n, doc_id in enumerate((add_doc(ledger, None, "u"), add_doc(ledger, Invoice(), "e"))):
        assert ledger.get(doc_id).state == "quarantined"
        values = {name: str(value) for name, value in GOOD.items()}
        out = file_amend(ledger, doc_id, {**values, "number": f"2411000000001234567{n}"})
        assert (out.state, out.approval) == ("pending", "other"), doc_id
        assert {c["kind"] for c in out.changes.values()} == {"fill"}
        with pytest.raises(apps.NeedsAnotherPerson, match="neither its number nor an amount"):
            approve(ledger, out.number, who=ALICE)
        assert approve(ledger, out.number).document_state == "queued"
    # Beside an amount the file gave, the missing number is filled by one person.
    read = add_doc(ledger, invoice(number=None), "n")
    assert file_amend(ledger, read, {"number": "24110000000012345679"}).approval == "self"


def test_a_carried_text_changed_only_in_its_spaces_is_a_conflict_and_stored_text_is_never_respaced(ledger):
    doc_id = add_doc(ledger, invoice(), "a")
    out = file_amend(ledger, doc_id, {"buyer_name": "上海某某\u3000有限公司"})
    assert out.changes["buyer_name"]["kind"] == "conflict" and (out.state, out.approval) == ("pending", "other")
    decline(ledger, out.number)
    # OCR's reading spaced differently: a correction, four eyes too.
    ocr = invoice()
    ocr.fields["seller_name"] = ocr.fields["seller_name"].__class__("北京某某科技有限公司", "ocr")
    other = add_doc(ledger, ocr, "b")
    assert file_amend(ledger, other, {"seller_name": "北京某某 科技有限公司"}).changes["seller_name"]["kind"] \
        == "correction"
    # The very value it holds, typed again: no change, and it keeps its source.
    third = add_doc(ledger, invoice(), "c")
    same = file_amend(ledger, third, {"buyer_name": "上海某某有限公司", "total": "113"})
    assert (same.approval, {c["kind"] for c in same.changes.values()}) == ("self", {"same"})
    fields = ledger.get(third).fields
    assert fields["buyer_name"] == "上海某某有限公司" and fields["sources"]["buyer_name"] == "xml"
    assert fields["sources"]["total"] == "xml" and "replaced" not in fields


@pytest.mark.parametrize("bad", ["a\u2028b", "a\u2029b", "a\x85b", "a\u202eb", "a\u2066b", "a\ufeffb", "a\x1bb"])
def test_an_operator_value_with_line_control_or_direction_characters_is_refused(ledger, bad):
    doc_id = add_doc(ledger, invoice(buyer_name=None), "a")
    with pytest.raises(AmendError, match="without control"):
        file_amend(ledger, doc_id, {"buyer_name": bad})
    assert ledger.applications_of(doc_id) == []
