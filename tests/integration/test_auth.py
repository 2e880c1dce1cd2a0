"""Who may see what: token authentication and entitlements (README
"Authentication").

Contract lines -> tests:

* AUTH=required: a bad token in the upgrade (query or Bearer) -> 401, no
  upgrade; expired, not yet valid, wrong signature, alg none, HS/RS
  confusion, missing exp, wrong aud             -> test_bad_tokens_in_the_upgrade_get_401
* token by message within AUTH_TIMEOUT; bad or missing -> error unauthorized,
  close 4001                                     -> test_auth_by_message*, test_auth_timeout
* at exp: close 4001 "token expired" unless refreshed (same sub); refreshed
  reply; new entitlements apply                  -> test_expiry_*, test_refresh_*
* sports/books/markets: intersection, forbidden, snapshots obey it
                                                  -> test_entitlements_narrow_the_filter_and_snapshot
* opportunities: default false                    -> test_opportunities_need_the_claim
* fields basic: never the three fields, full clients on the same worker get
  them from the same entries                      -> test_basic_fields
* max_connections per sub -> 429                  -> test_max_connections_per_sub
* AUTH=optional: ANONYMOUS entitlements           -> test_optional_gives_anonymous_entitlements
* the token never appears in a log line           -> test_bad_tokens_in_the_upgrade_get_401
"""

import asyncio
import base64
import json
import os
import subprocess
import time

import jwt
import pytest

from conftest import odds_fields, publish, run, uid, upgrade_status, wait_until, ws_connect

SECRET = "s" * 40


def token(claims=None, secret=SECRET, alg="HS256", exp_in=60, **over):
    c = {"sub": "user-1", "exp": int(time.time()) + exp_in}
    c.update(claims or {})
    c.update(over)
    c = {k: v for k, v in c.items() if v is not None}
    return jwt.encode(c, secret, algorithm=alg)


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "hs256.secret"
    p.write_text(SECRET + "\n")
    return str(p)


def auth_service(service, secret_file, **kw):
    return service(AUTH=kw.pop("AUTH", "required"), AUTH_HS256_SECRET_FILE=secret_file, **kw)


def none_token():
    h = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    p = base64.urlsafe_b64encode(json.dumps({"sub": "x", "exp": int(time.time()) + 60}).encode()).rstrip(b"=").decode()
    return f"{h}.{p}."


def test_bad_tokens_in_the_upgrade_get_401(service, secret_file):
    svc = auth_service(service, secret_file, AUTH_AUDIENCE="odds-app")
    good = token(aud="odds-app")
    assert upgrade_status(svc.port, f"/ws?token={good}") == 101
    assert upgrade_status(svc.port, headers={"Authorization": f"Bearer {good}"}) == 101
    bad = {
        "expired": token(aud="odds-app", exp_in=-120),
        "not yet valid": token(aud="odds-app", nbf=int(time.time()) + 300),
        "wrong signature": token(aud="odds-app", secret="x" * 40),
        "alg none": none_token(),
        "missing exp": token(aud="odds-app", exp=None),
        "wrong aud": token(aud="other-app"),
        "garbage": "not.a.token",
    }
    for name, t in bad.items():
        assert upgrade_status(svc.port, f"/ws?token={t}") == 401, name
        assert upgrade_status(svc.port, headers={"Authorization": f"Bearer {t}"}) == 401, name
    log = svc.stderr_text()
    assert good not in log and all(t not in log for t in bad.values())


def test_hs_rs_confusion_is_refused(service, tmp_path):
    key = tmp_path / "rsa.pem"
    pub = tmp_path / "rsa.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    svc = service(AUTH="required", AUTH_PUBLIC_KEY_FILE=str(pub))
    good = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, key.read_text(), algorithm="RS256")
    assert upgrade_status(svc.port, f"/ws?token={good}") == 101
    # HS256 signed with the public key's PEM as the secret
    pem = pub.read_bytes()
    h = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    p = base64.urlsafe_b64encode(json.dumps({"sub": "u", "exp": int(time.time()) + 60}).encode()).rstrip(b"=")
    import hashlib
    import hmac
    sig = base64.urlsafe_b64encode(hmac.new(pem, h + b"." + p, hashlib.sha256).digest()).rstrip(b"=")
    forged = (h + b"." + p + b"." + sig).decode()
    assert upgrade_status(svc.port, f"/ws?token={forged}") == 401


async def expect_close(c, code, timeout=5.0):
    try:
        await asyncio.wait_for(c.ws.wait_closed(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError("not closed") from None
    assert c.ws.close_code == code, (c.ws.close_code, c.ws.close_reason)
    return c.ws.close_reason


def test_auth_by_message(service, secret_file):
    svc = auth_service(service, secret_file)

    async def go():
        c = await ws_connect(svc.port)
        await c.send_json({"type": "auth", "payload": {"token": token()}})
        m = await c.recv_type("authenticated")
        assert m["payload"]["sub"] == "user-1"
        await c.subscribe()
        await c.close()
        # a bad token by message: error unauthorized, then 4001
        c = await ws_connect(svc.port)
        await c.send_json({"type": "auth", "payload": {"token": token(secret="y" * 40)}})
        err = await c.recv_json()
        assert err["type"] == "error" and err["payload"]["code"] == "unauthorized"
        await expect_close(c, 4001)
        # anything else first: the same
        c = await ws_connect(svc.port)
        await c.send_json({"type": "subscribe", "payload": {}})
        err = await c.recv_json()
        assert err["type"] == "error" and err["payload"]["code"] == "unauthorized"
        await expect_close(c, 4001)

    run(go())


def test_auth_timeout(service, secret_file):
    svc = auth_service(service, secret_file, AUTH_TIMEOUT="1")

    async def go():
        c = await ws_connect(svc.port)
        t0 = time.monotonic()
        err = await c.recv_json(5)
        assert err["type"] == "error" and err["payload"]["code"] == "unauthorized"
        await expect_close(c, 4001)
        assert 0.8 < time.monotonic() - t0 < 3

    run(go())


def test_expiry_closes_4001_at_exp(service, secret_file):
    svc = auth_service(service, secret_file, AUTH_LEEWAY="0")

    async def go():
        exp = int(time.time()) + 2
        c = await ws_connect(svc.port, f"/ws?token={token(exp=exp)}")
        await c.subscribe()
        reason = await expect_close(c, 4001, timeout=6)
        assert "expired" in reason
        assert abs(time.time() - exp) < 1.5

    run(go())


def test_refresh_keeps_the_connection_and_changes_entitlements(service, secret_file, r):
    svc = auth_service(service, secret_file, AUTH_LEEWAY="0", SPORTS=f"t{uid()}_a,t{uid()}_b")
    a, b = svc.sports

    async def go():
        c = await ws_connect(svc.port, f"/ws?token={token({'sports': [a]}, exp_in=2)}")
        ack = await c.subscribe(snapshot=False)
        assert ack["payload"]["sports"] == [a]
        await c.send_json({"type": "refresh", "payload": {"token": token({"sports": [a, b]}, exp_in=30)}})
        m = await c.recv_type("refreshed")
        assert m["payload"]["exp"] > time.time() + 20
        # a refresh for another sub is refused, the token in force stays
        await c.send_json({"type": "refresh", "payload": {"token": token(sub="someone-else")}})
        err = await c.recv_type("error")
        assert err["payload"]["code"] == "unauthorized"
        await asyncio.sleep(2.5)  # past the first token's exp
        publish(r, f"odds.normalized.{b}", **odds_fields(b, event="after-refresh"))
        (u,) = await c.updates(1)
        assert u["payload"]["event_id"] == "after-refresh"
        await c.close()

    run(go())


def test_entitlements_narrow_the_filter_and_snapshot(service, secret_file, r):
    t = uid()
    svc = auth_service(service, secret_file, SPORTS=f"t{t}_a,t{t}_b")
    a, b = svc.sports
    for s in (a, b):
        publish(r, f"odds.normalized.{s}", **odds_fields(s, event=f"e-{s}", book="fanduel"))
        publish(r, f"odds.normalized.{s}", **odds_fields(s, event=f"e-{s}", book="dk"))
    wait_until(lambda: svc.metrics()["entries_published"] >= 4, message="published")
    tok = token({"sports": [a], "books": ["fanduel"]})

    async def go():
        c = await ws_connect(svc.port, f"/ws?token={tok}", keep_snapshots=True)
        ack = await c.subscribe()
        assert ack["payload"]["sports"] == [a] and ack["payload"]["books"] == ["fanduel"]
        snap = await c.recv_type("snapshot")
        items = snap["payload"]["items"]
        assert [(i["sport_key"], i["book_key"]) for i in items] == [(a, "fanduel")]
        ack = await c.subscribe(sports=[a, b], books=["fanduel", "dk"])
        assert ack["payload"]["sports"] == [a] and ack["payload"]["books"] == ["fanduel"]
        await c.send_json({"type": "subscribe", "payload": {"sports": [b]}})
        err = await c.recv_type("error")
        assert err["payload"]["code"] == "forbidden"
        # the previous filter stays
        publish(r, f"odds.normalized.{b}", **odds_fields(b, event="x", book="fanduel"))
        publish(r, f"odds.normalized.{a}", **odds_fields(a, event="y", book="dk"))
        publish(r, f"odds.normalized.{a}", **odds_fields(a, event="z", book="fanduel"))
        u = await c.recv_type("odds_update")
        assert u["payload"]["event_id"] == "z"
        await c.close()

    run(go())


def test_opportunities_need_the_claim(service, secret_file, r):
    svc = auth_service(service, secret_file)

    async def go():
        without = await ws_connect(svc.port, f"/ws?token={token()}")
        with_ = await ws_connect(svc.port, f"/ws?token={token(opportunities=True)}")
        await without.subscribe(snapshot=False)
        await with_.subscribe(snapshot=False)
        publish(r, svc.opp_stream, opportunity_id="o1", event_id="e1")
        publish(r, svc.stream(), **odds_fields(svc.sport, event="after"))
        (m1, m2) = await with_.updates(2)
        assert m1["type"] == "opportunity"
        (m,) = await without.updates(1)
        assert m["type"] == "odds_update" and m["payload"]["event_id"] == "after"
        await without.close()
        await with_.close()

    run(go())


def test_basic_fields(service, secret_file, r):
    svc = auth_service(service, secret_file, WORKERS="1")

    async def go():
        basic = await ws_connect(svc.port, f"/ws?token={token(fields='basic')}", keep_snapshots=True)
        full = await ws_connect(svc.port, f"/ws?token={token()}", keep_snapshots=True)
        await basic.subscribe()
        await full.subscribe()
        await basic.recv_type("snapshot")
        await full.recv_type("snapshot")
        publish(r, svc.stream(), **odds_fields(svc.sport, event="b1"))
        (mb,) = await basic.updates(1)
        (mf,) = await full.updates(1)
        premium = {"novig_probability", "fair_price", "edge"}
        assert not premium & set(mb["payload"]), mb
        assert premium <= set(mf["payload"]), mf
        assert {k: v for k, v in mf["payload"].items() if k not in premium} == mb["payload"]
        # snapshots too
        await basic.unsubscribe()
        await basic.subscribe()
        snap = await basic.recv_type("snapshot")
        assert snap["payload"]["items"] and all(not premium & set(i) for i in snap["payload"]["items"])
        await basic.close()
        await full.close()

    run(go())


def test_max_connections_per_sub(service, secret_file):
    svc = auth_service(service, secret_file)
    tok = token(max_connections=2)

    async def go():
        a = await ws_connect(svc.port, f"/ws?token={tok}")
        b = await ws_connect(svc.port, f"/ws?token={tok}")
        assert upgrade_status(svc.port, f"/ws?token={tok}") == 429
        await a.close()
        await asyncio.sleep(0.3)
        c = await ws_connect(svc.port, f"/ws?token={tok}")
        await b.close()
        await c.close()

    run(go())


def test_optional_gives_anonymous_entitlements(service, secret_file, r):
    t = uid()
    svc = auth_service(service, secret_file, AUTH="optional", SPORTS=f"t{t}_a,t{t}_b",
                       ANONYMOUS=json.dumps({"sports": [f"t{t}_a"], "fields": "basic"}))
    a, b = svc.sports

    async def go():
        anon = await ws_connect(svc.port)
        ack = await anon.subscribe(snapshot=False)
        assert ack["payload"]["sports"] == [a]
        publish(r, f"odds.normalized.{b}", **odds_fields(b, event="nope"))
        publish(r, f"odds.normalized.{a}", **odds_fields(a, event="yes"))
        (m,) = await anon.updates(1)
        assert m["payload"]["event_id"] == "yes" and "edge" not in m["payload"]
        # a token upgrades it
        await anon.send_json({"type": "auth", "payload": {"token": token()}})
        await anon.recv_type("authenticated")
        await anon.close()

    run(go())


def test_key_file_is_read_again_on_sighup(service, secret_file):
    import signal

    svc = auth_service(service, secret_file, WORKERS="1")
    old = token()
    assert upgrade_status(svc.port, f"/ws?token={old}") == 101
    new_secret = "n" * 40
    with open(secret_file, "w") as f:
        f.write(new_secret + "\n")
    os.kill(svc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while upgrade_status(svc.port, f"/ws?token={old}") != 401:
        assert time.monotonic() < deadline, "the old key is still accepted after SIGHUP"
        time.sleep(0.1)
    assert upgrade_status(svc.port, f"/ws?token={token(secret=new_secret)}") == 101
    # a bad file keeps the key in use
    with open(secret_file, "w") as f:
        f.write("short\n")
    os.kill(svc.pid, signal.SIGHUP)
    time.sleep(0.5)
    assert upgrade_status(svc.port, f"/ws?token={token(secret=new_secret)}") == 101
    assert "keeping the one in use" in svc.stderr_text()
