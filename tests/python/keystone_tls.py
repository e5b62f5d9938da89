"""Logs in to Roost over HTTPS with keystoneauth1, as StarlingX's clients do
with --os-cacert / OS_CACERT.

Usage: keystone_tls.py BASE_URL PASSWORD MODE
  MODE cafile:PATH  the session verifies with PATH (--os-cacert PATH)
  MODE env          the session verifies with $OS_CACERT (what the clients do)
  MODE none         the session uses the default trust store: must FAIL

Exits 0 when the outcome is the expected one, else non-zero with a message.
"""
import os
import sys

from keystoneauth1 import exceptions, session
from keystoneauth1.identity import v3


def login(base, password, verify):
    auth = v3.Password(auth_url=base + "/v3", username="admin", password=password,
                       project_name="admin", user_domain_name="Default",
                       project_domain_name="Default")
    sess = session.Session(auth=auth, verify=verify)
    fm = sess.get_endpoint(service_type="faultmanagement", interface="public",
                           region_name="RegionOne")
    if fm != base:
        raise SystemExit("FAILED: faultmanagement endpoint %r, expected %r" % (fm, base))
    r = sess.get(fm + "/v1/alarms/summary")
    if r.status_code != 200:
        raise SystemExit("FAILED: summary %s" % r.text)


def main():
    base, password, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode.startswith("cafile:"):
        login(base, password, mode[len("cafile:"):])
    elif mode == "env":
        login(base, password, os.environ["OS_CACERT"])
    elif mode == "none":
        try:
            login(base, password, True)
        except exceptions.SSLError:
            print("refused without the CA, as it must be")
            return
        raise SystemExit("FAILED: the server's certificate was accepted without its CA")
    else:
        raise SystemExit("unknown mode " + mode)
    print("keystoneauth1 over HTTPS OK")


if __name__ == "__main__":
    main()
