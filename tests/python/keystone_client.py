"""Drives Roost's identity API with keystoneauth1, the library StarlingX's fm, system
and dcmanager clients use to log in and find their endpoints.

Usage: keystone_client.py BASE_URL PASSWORD. Exits non-zero with a message on failure.
"""
import sys

from keystoneauth1 import exceptions, session
from keystoneauth1.identity import v3


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def main():
    base, password = sys.argv[1], sys.argv[2]
    for auth_url in (base + "/v3", base):
        auth = v3.Password(auth_url=auth_url, username="admin", password=password,
                           project_name="admin", user_domain_name="Default",
                           project_domain_name="Default")
        sess = session.Session(auth=auth)
        fm = sess.get_endpoint(service_type="faultmanagement", interface="public",
                               region_name="RegionOne")
        check(fm == base, "faultmanagement endpoint %r" % fm)
        platform = sess.get_endpoint(service_type="platform", interface="public",
                                     region_name="RegionOne")
        check(platform == base + "/v1", "platform endpoint %r" % platform)
        dc = sess.get_endpoint(service_type="dcmanager", interface="internal")
        check(dc == base + "/v1.0", "dcmanager endpoint %r" % dc)
        check(sess.get_user_id() is not None, "user id")
        check(sess.get_project_id() is not None, "project id")
        r = sess.get(fm + "/v1/alarms/summary")
        check(r.status_code == 200 and r.json()["status"] == "OK", "summary %s" % r.text)

    # dcmanager's flow: an unscoped token request with the token method.
    token = sess.get_token()
    tsess = session.Session(auth=v3.Token(auth_url=base + "/v3", token=token))
    check(tsess.get_token() != token, "a new token from the token method")
    check(tsess.get_user_id() == sess.get_user_id(), "same user")

    bad = session.Session(auth=v3.Password(auth_url=base + "/v3", username="admin",
                                           password="wrong", project_name="admin",
                                           user_domain_name="Default",
                                           project_domain_name="Default"))
    try:
        bad.get_token()
        check(False, "a wrong password must be refused")
    except exceptions.Unauthorized:
        pass
    print("keystoneauth1 flows OK")


if __name__ == "__main__":
    main()
