"""The portal guard: anonymous visitors go to sign-in; a bumped session epoch signs every session out."""

from members.models import MemberLogin


def test_anonymous_is_sent_to_sign_in(client, db):
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/sign-in/?next=%2Fportal%2F"


def test_htmx_anonymous_gets_full_page_redirect(client, db):
    response = client.get("/portal/history/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/portal/sign-in/"


def test_signed_in_member_sees_home(portal_client):
    assert portal_client.get("/portal/").status_code == 200


def test_session_epoch_bump_signs_out(portal_client, portal_member):
    MemberLogin.objects.filter(pk=portal_member.pk).update(session_epoch=1)
    assert portal_client.get("/portal/").status_code == 302
