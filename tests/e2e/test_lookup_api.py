"""The screen pop's API over real HTTP: `GET /api/lookup?phone=` in the formats phone systems
hand numbers over, with the owner, the latest items and the open review questions, validated
against the OpenAPI document; and `GET /api/interactions?external_id=` finding a call by its
Asterisk uniqueid, for exactly the roles that may see it (DESIGN.md "Who sees what").

The privacy site (tests/e2e/privacy_site.py): the PBX is nobody's, with an attributed call from
Piet Brandt (uniqueid 1704808800.1) and an unattributed one from a stranger (1709629200.7);
sales@ and manager@ own a mailbox each.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.e2e.privacy_site import PrivacySite, privacy_site  # noqa: F401

PIET = "+491712233445"
SPELLINGS = (
    "0171 2233445",
    "+49 171 2233445",
    "0049 171 2233445",
    "+49 (0)171 223-3445",
    "0171/223 34 45",
    "(0171) 2233445",
    "+491712233445",
)
ROLES = ("admin", "manager", "sales", "callcenter")


def _get(site: PrivacySite, role: str, path: str, **params: str) -> Any:
    with site.api(role) as client:
        answer = client.get(path, params=params)
    assert answer.status_code == 200, (role, path, params, answer.text)
    return answer.json()


def _lookup_errors(site: PrivacySite, doc: Any) -> list[str]:
    with site.api("sales") as client:
        document = client.get("/api/openapi.json").json()
    schema = {"$ref": "#/components/schemas/Lookup", "components": document["components"]}
    return [e.message for e in Draft202012Validator(schema).iter_errors(doc)]


@pytest.mark.parametrize("spelled", SPELLINGS)
def test_every_spelling_of_a_number_finds_the_caller(
    privacy_site: PrivacySite,  # noqa: F811
    spelled: str,
) -> None:
    site = privacy_site
    who = _get(site, "sales", "/api/lookup", phone=spelled)
    assert who["query"]["phone"] == PIET
    assert [c["id"] for c in who["contacts"]] == [site.ids.piet]
    assert [a["name"] for a in who["accounts"]] == ["Elbe Logistik GmbH"]
    assert who["owner"] == "anna@ourco.example"  # the directory's owner of Piet's account
    assert site.ids.piet_call in [item["id"] for item in who["latest"]]
    assert _lookup_errors(site, who) == []


def test_a_number_nobody_has_and_a_number_that_is_none(
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    site = privacy_site
    stranger = _get(site, "sales", "/api/lookup", phone="030 1234567")
    assert stranger["query"]["phone"] == "+49301234567"
    assert (stranger["contacts"], stranger["accounts"], stranger["owner"]) == ([], [], None)
    assert stranger["latest"] == [], "the stranger's call is nobody's: not sales'"
    assert _lookup_errors(site, stranger) == []
    with site.api("sales") as client:
        for bad in ("anonymous", "12", "x" * 40):
            answer = client.get("/api/lookup", params={"phone": bad})
            assert answer.status_code == 400, bad
            assert answer.json()["error"]["code"] == "bad_identity"
            assert repr(bad[:80]) in answer.json()["error"]["message"]


def test_a_question_about_a_call_nobody_may_review_reaches_nobody(
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    """The stranger's call is the PBX's, nobody's, and attributed to nobody: it exists for
    admins as metadata, and admins do not review; sales and managers may not see it.
    (tests/e2e/test_screen_pop.py has the case where the caller's owner sees the question.)"""
    for role in ROLES:
        who = _get(privacy_site, role, "/api/lookup", phone="030 1234567")
        assert who["questions"] == [], role
        assert _lookup_errors(privacy_site, who) == []


def test_a_call_is_found_by_its_uniqueid_by_those_who_may_see_it(
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    site = privacy_site
    for role in ROLES:
        found = _get(site, role, "/api/interactions", external_id="1704808800.1")
        assert [i["id"] for i in found["items"]] == [site.ids.piet_call], role
        stranger = _get(site, role, "/api/interactions", external_id="1709629200.7")
        expected = [site.ids.stranger_call] if role == "admin" else []
        assert [i["id"] for i in stranger["items"]] == expected, role
        assert stranger["next_cursor"] is None
    with_connector = _get(site, "sales", "/api/interactions", connector="pbx")
    assert site.ids.piet_call in [i["id"] for i in with_connector["items"]]
    source_id = next(
        s["external_id"]
        for i in with_connector["items"]
        if i["id"] == site.ids.piet_call
        for s in i["sources"]
    )
    by_source = _get(site, "sales", "/api/interactions", connector="pbx", external_id=source_id)
    assert [i["id"] for i in by_source["items"]] == [site.ids.piet_call]
    anywhere = _get(site, "sales", "/api/interactions", external_id=source_id)
    assert [i["id"] for i in anywhere["items"]] == [site.ids.piet_call]
    native_in_pbx = _get(
        site, "sales", "/api/interactions", connector="pbx", external_id="1704808800.1"
    )
    assert native_in_pbx["items"] == [], "with a connector: that connector's source id only"
