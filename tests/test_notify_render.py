"""Rendering a message: the webhook body, the email subject, text and HTML (pure functions)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from notify_servers import DETECTED, make_change, make_message
from pydantic import ValidationError

from service.models import StoredChange
from service.notify.render import (
    SUBJECT_MAX,
    Alert,
    Message,
    StudyChanges,
    compare_url,
    email_html,
    email_subject,
    email_text,
    render,
    webhook_body,
    webhook_payload,
)
from service.templates import macro

EVIL = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"


def enrollment(old: int, new: int, **fields: Any) -> StoredChange:
    return make_change(
        **{
            "id": 8,
            "kind": "enrollment_changed",
            "field": "protocolSection.designModule.enrollmentInfo.count",
            "old": old,
            "new": new,
            "summary": f"Enrollment: {old} → {new}",
        }
        | fields
    )


def enrollment_type(old: str, new: str) -> StoredChange:
    return make_change(
        id=9,
        kind="enrollment_type_changed",
        field="protocolSection.designModule.enrollmentInfo.type",
        old=old,
        new=new,
        summary=f"Enrollment type: {old.title()} → {new.title()}",
    )


def outcome_modified(old: dict[str, str], new: dict[str, str], **fields: Any) -> StoredChange:
    return make_change(
        **{
            "id": 10,
            "kind": "outcome_modified",
            "field": "protocolSection.outcomesModule.primaryOutcomes[0]",
            "outcome_type": "primary",
            "old": old,
            "new": new,
            "severity": "high",
            "summary": "Primary outcome 1 modified: measure",
        }
        | fields
    )


def digest(*studies: StudyChanges) -> Message:
    return Message(event_id="dig-1", created_at=DETECTED, kind="digest", studies=list(studies))


class TagCollector(HTMLParser):
    """Every tag and attribute in a document, to check what the HTML can do."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name == "href" and value:
                self.hrefs.append(value)


def collect(document: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(document)
    collector.close()
    return collector


# --------------------------------------------------------------------------- webhook body


def test_the_webhook_body_is_the_contracts_shape() -> None:
    message = make_message(make_change(), event_id="evt-1", title="A trial")
    assert json.loads(webhook_body(message)) == {
        "id": "evt-1",
        "type": "study.changed",
        "created_at": "2026-11-22T06:00:03+00:00",
        "study": {
            "registry": "ctgov",
            "study_id": "NCT05605665",
            "title": "A trial",
            "url": "https://clinicaltrials.gov/study/NCT05605665",
        },
        "changes": [
            {
                "registry": "ctgov",
                "study_id": "NCT05605665",
                "kind": "status_changed",
                "field": "protocolSection.statusModule.overallStatus",
                "old": "RECRUITING",
                "new": "COMPLETED",
                "severity": "medium",
                "summary": "Overall status: Recruiting → Completed",
                "id": 7,
                "detected_at": "2026-11-22T06:00:03+00:00",
                "from_version": 1,
                "to_version": 2,
                "historical": False,
            }
        ],
    }


def test_the_webhook_body_is_compact_utf8_in_a_fixed_key_order() -> None:
    message = make_message(event_id="evt-1")
    body = webhook_body(message)
    assert body == webhook_body(message.model_copy(deep=True))
    assert body.startswith(b'{"id":"evt-1","type":"study.changed","created_at":')
    assert "→".encode() in body  # UTF-8, not \u escapes
    assert b": " not in body.replace(b"Overall status: ", b"")


def test_a_digest_body_lists_each_study_with_its_changes() -> None:
    other = make_change(study_id="NCT00000001", id=20)
    message = digest(
        StudyChanges(study_id="NCT05605665", title="First", changes=[make_change()]),
        StudyChanges(study_id="NCT00000001", title="Second", changes=[other]),
    )
    payload = webhook_payload(message)
    assert list(payload) == ["id", "type", "created_at", "studies"]
    assert payload["type"] == "digest"
    assert [s["study"]["study_id"] for s in payload["studies"]] == ["NCT05605665", "NCT00000001"]
    assert payload["studies"][1]["changes"] == [other.to_json()]
    assert payload["studies"][1]["study"]["url"] == "https://clinicaltrials.gov/study/NCT00000001"


def test_a_naive_created_at_is_taken_as_utc() -> None:
    message = Message(
        event_id="e",
        created_at=datetime(2026, 1, 2, 3, 4, 5),
        kind="study.changed",
        studies=[StudyChanges(study_id="NCT05605665", changes=[make_change()])],
    )
    assert webhook_payload(message)["created_at"] == "2026-01-02T03:04:05+00:00"


def test_a_study_without_a_known_page_has_a_null_url_and_no_links() -> None:
    change = make_change(registry="drks", study_id="DRKS00012345")
    message = make_message(change, study_id="DRKS00012345")
    message = message.model_copy(
        update={
            "studies": [StudyChanges(registry="drks", study_id="DRKS00012345", changes=[change])]
        }
    )
    assert webhook_payload(message)["study"]["url"] is None
    assert collect(email_html(message)).hrefs == []


@pytest.mark.parametrize(
    ("registry", "study_id", "url"),
    [
        ("isrctn", "ISRCTN12949496", "https://www.isrctn.com/ISRCTN12949496"),
        ("ctis", "2023-505613-24-00", "https://euclinicaltrials.eu/ctis-public/view/2023-505613-24-00"),
        ("euctr", "2021-002179-21", "https://www.clinicaltrialsregister.eu/ctr-search/search?query=2021-002179-21"),
    ],
)  # fmt: skip
def test_each_registry_links_its_own_record_page_and_no_version_comparison(
    registry: str, study_id: str, url: str
) -> None:
    change = make_change(registry=registry, study_id=study_id)
    message = make_message(change, study_id=study_id)
    message = message.model_copy(
        update={"studies": [StudyChanges(registry=registry, study_id=study_id, changes=[change])]}
    )
    assert webhook_payload(message)["study"]["url"] == url
    assert collect(email_html(message)).hrefs == [url]  # its own versions: no registry compare


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "study.changed", "studies": []},
        {"event_id": "two\nlines"},
        {"event_id": ""},
        {"kind": "news"},
    ],
)
def test_malformed_messages_are_refused(fields: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "event_id": "e",
        "created_at": DETECTED,
        "kind": "study.changed",
        "studies": [StudyChanges(study_id="NCT05605665", changes=[make_change()])],
    }
    with pytest.raises(ValidationError):
        Message(**(values | fields))


def test_two_studies_need_a_digest() -> None:
    study = StudyChanges(study_id="NCT05605665", changes=[make_change()])
    with pytest.raises(ValidationError, match="one study"):
        Message(event_id="e", created_at=DETECTED, kind="study.changed", studies=[study, study])


# --------------------------------------------------------------------------- subject


def test_the_subject_says_what_changed() -> None:
    message = make_message(
        make_change(), enrollment(30, 28), enrollment_type("ESTIMATED", "ACTUAL")
    )
    assert (
        email_subject(message) == "NCT05605665: Recruiting → Completed; enrollment 30 → 28 (actual)"
    )


def test_the_subject_puts_the_most_severe_change_first() -> None:
    stopped = make_change(
        id=11, new="TERMINATED", severity="high", summary="Overall status: Recruiting → Terminated"
    )
    low = make_change(
        id=12,
        kind="field_changed",
        field="protocolSection.identificationModule.briefTitle",
        severity="low",
        summary="Brief title changed",
    )
    message = make_message(low, enrollment(30, 28), stopped)
    assert email_subject(message) == (
        "NCT05605665: Recruiting → Terminated; enrollment 30 → 28; brief title changed"
    )


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (
            make_change(
                kind="date_changed",
                field="protocolSection.statusModule.primaryCompletionDateStruct",
                old={"date": "2023-11-01", "type": "ESTIMATED"},
                new={"date": "2023-10-31", "type": "ACTUAL"},
                summary="Primary completion date: …",
            ),
            "primary completion 2023-11-01 → 2023-10-31 (actual)",
        ),
        (
            make_change(
                kind="phase_changed",
                field="protocolSection.designModule.phases",
                old=["PHASE2"],
                new=["PHASE2", "PHASE3"],
                summary="Phase: Phase 2 → Phase 2, Phase 3",
            ),
            "Phase 2 → Phase 2/Phase 3",
        ),
        (
            make_change(
                kind="results_posted",
                field="hasResults",
                old=False,
                new=True,
                severity="high",
                summary="Results posted",
            ),
            "results posted",
        ),
        (
            make_change(
                kind="outcome_reclassified",
                field="protocolSection.outcomesModule.secondaryOutcomes[0]",
                outcome_type="secondary",
                old="primary",
                new="secondary",
                severity="high",
                summary="Primary outcome 1 moved to secondary",
            ),
            "outcome moved primary → secondary",
        ),
        (
            make_change(
                kind="field_changed",
                field="protocolSection.armsInterventionsModule.armGroups",
                summary="Arms: +Placebo",
            ),
            "arms changed",
        ),
        (enrollment_type("ACTUAL", "ESTIMATED"), "enrollment actual → estimated"),
    ],
)
def test_each_kind_has_a_short_subject_phrase(change: StoredChange, phrase: str) -> None:
    assert email_subject(make_message(change)) == f"NCT05605665: {phrase}"


def test_repeated_phrases_are_counted_once() -> None:
    added = [
        make_change(
            id=30 + i,
            kind="outcome_added",
            field=f"protocolSection.outcomesModule.secondaryOutcomes[{i}]",
            outcome_type="secondary",
            old=None,
            new={"measure": f"M{i}", "time_frame": "", "description": ""},
            summary=f"Secondary outcome {i + 1} added",
        )
        for i in range(3)
    ]
    assert email_subject(make_message(*added)) == "NCT05605665: secondary outcome added (×3)"


def test_a_long_subject_is_cut_between_phrases_and_says_how_many_more() -> None:
    changes = [
        make_change(
            id=40 + i,
            kind="field_changed",
            field=f"protocolSection.x{i}",
            summary=f"Some rather long field label number {i}: a → b",
        )
        for i in range(10)
    ]
    subject = email_subject(make_message(*changes))
    assert len(subject) <= SUBJECT_MAX
    assert re.search(r"; \+\d+ more$", subject)
    shown = subject.count("; ") + (0 if "more" not in subject else -1) + 1
    assert shown + int(subject.rsplit("+", 1)[1].split()[0]) == 10


def test_registry_text_cannot_break_the_subject_line() -> None:
    change = make_change(
        old="RECRUITING",
        new="Evil\r\nBcc: victim@example.org",
        summary="Overall status: x",
    )
    subject = email_subject(make_message(change))
    assert "\n" not in subject and "\r" not in subject


@pytest.mark.parametrize(
    ("counts", "subject"),
    [
        ((1,), "trialwatch digest: 1 study, 1 change"),
        ((3, 2, 2), "trialwatch digest: 3 studies, 7 changes"),
    ],
)
def test_a_digest_subject_counts_studies_and_changes(counts: tuple[int, ...], subject: str) -> None:
    studies = [
        StudyChanges(
            study_id=f"NCT0000000{s}",
            changes=[make_change(study_id=f"NCT0000000{s}", id=10 * s + i) for i in range(n)],
        )
        for s, n in enumerate(counts)
    ]
    assert email_subject(digest(*studies)) == subject


# --------------------------------------------------------------------------- HTML


def test_registry_text_is_escaped_everywhere_in_the_html() -> None:
    message = make_message(
        make_change(old=EVIL, new="COMPLETED", summary=f"Overall status: {EVIL} → Completed"),
        outcome_modified(
            {"measure": f"Remission {EVIL} at week 12", "time_frame": "", "description": ""},
            {"measure": "Remission at week 24", "time_frame": EVIL, "description": ""},
        ),
        title=EVIL,
        study_id="NCT05605665",
    )
    document = email_html(message)
    assert "<script" not in document and "<img" not in document
    assert "onerror=alert" not in document.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;" in document
    found = collect(document)
    allowed = {"html", "head", "meta", "title", "body", "div", "h1", "h2", "p", "a", "span"}
    assert found.tags <= allowed | {"strong", "del", "ins", "ul", "li"}
    assert found.attributes <= {"lang", "charset", "name", "content", "style", "href"}


def test_the_html_is_self_contained() -> None:
    document = email_html(make_message(make_change(), enrollment(30, 28)))
    assert not re.search(r"\s(src|srcset)=", document)
    assert "<link" not in document and "<style" not in document and "url(" not in document
    assert all(href.startswith("https://clinicaltrials.gov/") for href in collect(document).hrefs)


def test_the_html_links_the_study_page_and_the_compare_view() -> None:
    message = make_message(make_change(from_version=3, to_version=4))
    hrefs = collect(email_html(message)).hrefs
    assert "https://clinicaltrials.gov/study/NCT05605665" in hrefs
    assert "https://clinicaltrials.gov/study/NCT05605665?tab=history&a=3&b=4" in hrefs
    assert "?tab=history&amp;a=3&amp;b=4" in email_html(message)  # escaped in the attribute


def test_no_compare_link_without_both_versions() -> None:
    message = make_message(make_change(from_version=None, to_version=2))
    assert not any("tab=history" in h for h in collect(email_html(message)).hrefs)
    assert compare_url("ctgov", "NCT05605665", None, 2) is None


def test_a_change_is_old_struck_through_and_new_highlighted() -> None:
    document = email_html(make_message(enrollment(30, 28)))
    assert re.search(r"<del [^>]*line-through[^>]*>30</del> → <ins [^>]*>28</ins>", document)
    status = email_html(make_message(make_change()))
    assert re.search(r"<del [^>]*>Recruiting</del> → <ins [^>]*>Completed</ins>", status)


def test_a_reworded_outcome_is_diffed_word_by_word() -> None:
    change = outcome_modified(
        {
            "measure": "Proportion of participants in remission at week 12",
            "time_frame": "12 weeks",
            "description": "",
        },
        {
            "measure": "Proportion of participants in complete remission at week 24",
            "time_frame": "12 weeks",
            "description": "",
        },
    )
    document = email_html(make_message(change))
    assert re.search(r"<ins [^>]*>complete </ins>remission at week <del [^>]*>12</del>", document)
    assert re.search(r"<del [^>]*>12</del><ins [^>]*>24</ins>", document)
    # Unchanged words are plain text, not struck through.
    assert not re.search(r"<del [^>]*>[^<]*Proportion", document)
    # The unchanged time frame is shown for context, not as a change.
    assert "Time frame:</span> 12 weeks" in document


def test_a_long_text_keeps_only_context_around_the_change() -> None:
    words = [f"w{i}" for i in range(200)]
    old = " ".join(words)
    new = " ".join([*words[:100], "CHANGED", *words[101:]])
    change = make_change(
        kind="field_changed",
        field="protocolSection.eligibilityModule",
        old={"criteria": old},
        new={"criteria": new},
        summary="Eligibility changed: criteria",
    )
    document = email_html(make_message(change))
    assert "w50 " not in document and "w150" not in document  # far from the change: cut
    assert "w99" in document and "w101" in document and "…" in document
    assert re.search(r"<del [^>]*>w100</del><ins [^>]*>CHANGED</ins>", document)


ARM_BEFORE = "Rapamycin 0.5ml daily for 4 weeks."
ARM_AFTER = "Rapamycin 0.5ml once per day for 4 weeks."


def test_list_items_are_added_removed_or_diffed() -> None:
    change = make_change(
        kind="field_changed",
        field="protocolSection.armsInterventionsModule.armGroups",
        old=[
            {
                "label": "Rapamycin",
                "type": "EXPERIMENTAL",
                "description": "Rapamycin 0.5ml daily for 4 weeks.",
            },
            {"label": "Old arm", "type": "OTHER"},
        ],
        new=[
            {
                "label": "Rapamycin",
                "type": "EXPERIMENTAL",
                "description": "Rapamycin 0.5ml once per day for 4 weeks.",
            },
            {"label": "Placebo", "type": "PLACEBO_COMPARATOR"},
        ],
        summary="Arms: +Placebo, −Old arm, changed Rapamycin",
    )
    document = email_html(make_message(change))
    assert re.search(r"<ins [^>]*>Label: Placebo; Type: Placebo comparator</ins>", document)
    assert re.search(r"<del [^>]*>Label: Old arm; Type: Other</del>", document)
    assert re.search(r"<li>Rapamycin<div>.*<del [^>]*>daily</del>", document)


def test_a_digest_groups_changes_by_study() -> None:
    message = digest(
        StudyChanges(study_id="NCT05605665", title="First trial", changes=[make_change()]),
        StudyChanges(
            study_id="NCT00000001",
            title="Second trial",
            changes=[
                enrollment(10, 40, study_id="NCT00000001"),
                make_change(study_id="NCT00000001", id=3),
            ],
        ),
    )
    document = email_html(message)
    first, second = document.index("First trial"), document.index("Second trial")
    assert first < second
    assert document.count("<h2") == 2
    assert first < document.index(">10</del>") and second < document.index(">10</del>")
    assert "trialwatch digest: 2 studies, 3 changes" in document


def test_changes_from_two_version_pairs_are_shown_apart() -> None:
    message = make_message(
        make_change(from_version=1, to_version=2),
        enrollment(30, 28, from_version=2, to_version=3),
    )
    body = email_html(message).partition("<body")[2]
    assert body.index("Versions 1 → 2") < body.index("Recruiting") < body.index("Versions 2 → 3")


def test_an_alert_email_escapes_its_summary_and_details() -> None:
    alert = Alert(kind="schema_drift", summary=f"Drift {EVIL}", details=[EVIL, "a & b"])
    message = Message(event_id="a-1", created_at=DETECTED, kind="alert", studies=[], alert=alert)
    document = email_html(message)
    assert "<script" not in document and "<img" not in document
    assert "<li>a &amp; b</li>" in document and "trialwatch · event a-1" in document
    assert collect(document).tags <= {
        "html",
        "head",
        "meta",
        "title",
        "body",
        "h1",
        "ul",
        "li",
        "p",
    }


def test_the_shared_word_diff_macro_styles_with_classes_outside_mail() -> None:
    """The web app reuses the macro with a stylesheet: no inline styles without ``s``."""
    segments = [("equal", "in "), ("del", "<b>12</b>"), ("ins", "24"), ("gap", ""), ("equal", "x")]
    shown = macro("macros.html", "word_diff")(segments)
    assert shown == (
        '<div class="word-diff">in <del class="del">&lt;b&gt;12&lt;/b&gt;</del>'
        '<ins class="ins">24</ins><span class="muted"> … </span>x</div>'
    )


# --------------------------------------------------------------------------- plain text


def test_the_text_part_carries_links_summaries_and_raw_text() -> None:
    message = make_message(
        make_change(),
        outcome_modified(
            {
                "measure": "Remission at week 12 (<b>primary</b>)",
                "time_frame": "",
                "description": "",
            },
            {
                "measure": "Remission at week 24 (<b>primary</b>)",
                "time_frame": "",
                "description": "",
            },
        ),
        title="A & B <trial>",
        event_id="evt-9",
    )
    text = email_text(message)
    assert "NCT05605665: A & B <trial>" in text
    assert "https://clinicaltrials.gov/study/NCT05605665\n" in text
    assert "Compare: https://clinicaltrials.gov/study/NCT05605665?tab=history&a=1&b=2" in text
    assert "[medium] Overall status: Recruiting → Completed" in text
    assert "Measure was: Remission at week 12 (<b>primary</b>)" in text
    assert "Measure now: Remission at week 24 (<b>primary</b>)" in text
    assert text.index("[high]") < text.index("[medium]")  # most severe first
    assert "evt-9" in text


def test_render_gives_every_part_at_once() -> None:
    message = make_message()
    rendered = render(message)
    assert rendered.subject == email_subject(message)
    assert rendered.text == email_text(message)
    assert rendered.html == email_html(message)
    assert rendered.body == webhook_body(message)


def test_a_change_to_a_thousand_sites_shows_a_bounded_list() -> None:
    sites = [{"facility": f"Site {i}", "city": "Lyon", "status": "RECRUITING"} for i in range(1000)]
    closed = [site | {"status": "COMPLETED"} for site in sites]
    change = make_change(
        kind="field_changed",
        field="protocolSection.contactsLocationsModule.locations",
        old=sites,
        new=closed,
        severity="low",
        summary="Locations: 1000 changed",
    )
    document = email_html(make_message(change))
    assert document.count("<li>") == 50 and "and 950 more" in document
    assert len(document) < 100_000
