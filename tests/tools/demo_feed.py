#!/usr/bin/python3
"""Publish changing NBA odds to Redis Streams, for demos and manual testing.

Stands in for the normalizer: four games, four books, three markets (h2h,
spreads, totals).  It first publishes the whole board, then every tick moves
a market or a book's prices a little and XADDs only the outcomes whose price
or line changed, to odds.normalized.<sport>.  When a price beats the
consensus fair price by more than 2%, or the best prices of two books
together form an arbitrage, it also XADDs to the opportunities stream.

Field meanings (numbers as decimal strings, "" for none):
  price               American odds quoted by the book (-110, +135)
  point               the line for spreads and totals; "" for h2h
  decimal_odds        the same price in decimal form
  implied_probability 1 / decimal_odds (still includes the book's margin)
  novig_probability   implied probability with this book's margin removed
                      across the market's two outcomes
  fair_price          novig_probability as American odds
  edge                expected value of a 1-unit bet at this price against
                      the consensus fair probability (mean no-vig
                      probability of all books on the same line); > 0 beats
                      the market

Usage: demo_feed.py [--redis-url URL] [--rate N] [--count N] [--sport KEY]
                    [--maxlen N] [--opportunities-stream NAME] [--seed N]

Only Debian's python3-redis is needed.  Stops cleanly on SIGINT/SIGTERM and
waits for Redis (retrying every second) when it is down.
"""

import argparse
import json
import os
import random
import signal
import sys
import time
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

import redis

BOOKS = ["draftkings", "fanduel", "betmgm", "caesars"]

# (event_id, away team, home team, home win probability, home spread, total)
GAMES = [
    ("b1f0c6a2e3d94f5a8c7e21d0a9b3c401", "Boston Celtics", "New York Knicks", 0.44, 2.5, 224.5),
    ("c7d2e9f1a0b84c3d9e6f52a1b8c7d402", "Denver Nuggets", "Los Angeles Lakers", 0.47, 1.5, 229.5),
    ("d3a8b5c4f2e14a6b8d9c03e2f1a0b403", "Milwaukee Bucks", "Philadelphia 76ers", 0.58, -3.5, 221.5),
    ("e9c4d7a6b3f24e8a9b0d14f3c2e1d404", "Golden State Warriors", "Phoenix Suns", 0.62, -4.5, 232.5),
]

POSITIVE_EV_EDGE = 0.02  # a price this much better than fair is worth flagging
STOP = False


# ---------------------------------------------------------------- odds math


def american_to_decimal(american):
    if american > 0:
        return 1.0 + american / 100.0
    return 1.0 + 100.0 / -american


def probability_to_american(p):
    """Fair American odds of probability p (0 < p < 1), not rounded."""
    if p >= 0.5:
        return -100.0 * p / (1.0 - p)
    return 100.0 * (1.0 - p) / p


def quote(p):
    """The American price a book would post for implied probability p:
    whole numbers, steps of 5, never between -100 and +100."""
    p = min(max(p, 0.02), 0.98)
    a = probability_to_american(p)
    if a < 0:
        return min(-100, int(round(a / 5.0)) * 5)
    return max(100, int(round(a / 5.0)) * 5)


def num(x, digits):
    """A number as the decimal string the stream carries."""
    if x is None:
        return ""
    s = "%.*f" % (digits, x)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def utc_now():
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


# ------------------------------------------------------------- market model


class Market:
    """One market of one game: the consensus (true) probability of the first
    outcome on the consensus line, and each book's own quote around it."""

    def __init__(self, rng, event_id, key, names, p, line, step):
        self.rng = rng
        self.event_id = event_id
        self.key = key  # h2h, spreads or totals
        self.names = names  # (first outcome, second outcome)
        self.p = p  # probability of names[0] on self.line
        self.line = line  # points of names[0]; None for h2h
        self.step = step  # probability worth half a point of line
        # Per book: margin, own probability offset, own line, current quote.
        self.books = {}
        for b in BOOKS:
            self.books[b] = {
                "vig": rng.uniform(0.040, 0.052),
                "offset": rng.gauss(0.0, 0.006),
                "line": line,
                "quote": None,  # ((price0, point0), (price1, point1))
            }

    def drift(self):
        """Move the consensus; on spreads and totals, move the line once the
        price has gone half a point's worth away from even."""
        self.p += self.rng.gauss(0.0, 0.006)
        if self.line is None:
            self.p = min(max(self.p, 0.08), 0.92)
            return
        if self.p > 0.5 + self.step:
            self.line -= 0.5 if self.key == "spreads" else -0.5
            self.p -= self.step
        elif self.p < 0.5 - self.step:
            self.line += 0.5 if self.key == "spreads" else -0.5
            self.p += self.step

    def book_p(self, b):
        """Probability of names[0] on book b's line, before its margin."""
        st = self.books[b]
        p = self.p + st["offset"]
        if self.line is not None and st["line"] != self.line:
            # A lagging book's line is worth more or less than the market's.
            half_points = (st["line"] - self.line) / 0.5
            if self.key == "totals":
                half_points = -half_points
            p += half_points * self.step
        return min(max(p, 0.03), 0.97)

    def requote(self, b):
        """Recompute book b's quote; returns the outcome indexes that changed."""
        st = self.books[b]
        p0 = self.book_p(b)
        vig = st["vig"]
        prices = (quote(p0 + vig / 2.0), quote(1.0 - p0 + vig / 2.0))
        if self.line is None:
            points = (None, None)
        elif self.key == "spreads":
            points = (st["line"], -st["line"])
        else:
            points = (st["line"], st["line"])
        new = ((prices[0], points[0]), (prices[1], points[1]))
        old = st["quote"]
        st["quote"] = new
        if old is None:
            return [0, 1]
        return [i for i in (0, 1) if old[i] != new[i]]

    def move_book(self, b):
        """A book adjusts: its offset wanders back towards the consensus with
        noise, and it catches up with the market's line now and then."""
        st = self.books[b]
        st["offset"] = 0.75 * st["offset"] + self.rng.gauss(0.0, 0.008)
        if self.line is not None and st["line"] != self.line and self.rng.random() < 0.6:
            st["line"] = self.line

    def consensus(self, i):
        """Mean no-vig probability of outcome i across the books quoting the
        market's line (None if none do)."""
        ps = []
        for st in self.books.values():
            if st["quote"] is None or st["line"] != self.line:
                continue
            imp = [1.0 / american_to_decimal(st["quote"][k][0]) for k in (0, 1)]
            ps.append(imp[i] / (imp[0] + imp[1]))
        return sum(ps) / len(ps) if ps else None

    def fields(self, sport, b, i):
        """The flat stream fields of book b's outcome i."""
        st = self.books[b]
        (price, point) = st["quote"][i]
        imp = [1.0 / american_to_decimal(st["quote"][k][0]) for k in (0, 1)]
        dec = american_to_decimal(price)
        novig = imp[i] / (imp[0] + imp[1])
        fair = probability_to_american(novig)
        cons = self.consensus(i) if st["line"] == self.line else None
        edge = dec * (cons if cons is not None else novig) - 1.0
        return {
            "event_id": self.event_id,
            "sport_key": sport,
            "market_key": self.key,
            "book_key": b,
            "outcome_name": self.names[i],
            "price": str(price),
            "point": num(point, 1),
            "decimal_odds": num(dec, 4),
            "implied_probability": num(imp[i], 4),
            "novig_probability": num(novig, 4),
            "fair_price": str(int(round(fair))),
            "edge": num(edge, 4),
            "normalized_at": utc_now(),
        }

    def arbitrage(self):
        """(margin, (book, price) for outcome 0, (book, price) for outcome 1)
        if the best prices of two books on the market line cover both
        outcomes for less than 1, else None."""
        best = [None, None]
        for b, st in self.books.items():
            if st["quote"] is None or st["line"] != self.line:
                continue
            for i in (0, 1):
                dec = american_to_decimal(st["quote"][i][0])
                if best[i] is None or dec > best[i][2]:
                    best[i] = (b, st["quote"][i][0], dec)
        if best[0] is None or best[1] is None or best[0][0] == best[1][0]:
            return None
        total = 1.0 / best[0][2] + 1.0 / best[1][2]
        if total >= 1.0:
            return None
        return (1.0 - total, best[0], best[1])


def build_markets(rng):
    markets = []
    for event_id, away, home, p_home, home_spread, total in GAMES:
        markets.append(Market(rng, event_id, "h2h", (home, away), p_home, None, 0.0))
        markets.append(Market(rng, event_id, "spreads", (home, away), 0.5, home_spread, 0.03))
        markets.append(Market(rng, event_id, "totals", ("Over", "Under"), 0.5, total, 0.02))
    return markets


# ------------------------------------------------------------------- Redis


def parse_redis_url(url, password=None):
    """redis.Redis keyword arguments for REDIS_URL's forms: host:port,
    redis://[:password@]host:port[/db], or a unix socket path (/path,
    ./path or unix:///path).  REDIS_PASSWORD wins over a URL password."""
    kw = {"socket_connect_timeout": 2, "socket_timeout": 5}
    url = url.strip()
    if url.startswith("unix://"):
        url = url[len("unix://"):]
    if url.startswith("/") or url.startswith("./"):
        kw["unix_socket_path"] = url
    elif url.startswith("redis://"):
        u = urlsplit(url)
        kw["host"] = u.hostname or "localhost"
        kw["port"] = u.port or 6379
        if u.password:
            kw["password"] = unquote(u.password)
        db = u.path.lstrip("/")
        if db:
            kw["db"] = int(db)
    else:
        host, sep, port = url.rpartition(":")
        if not sep:
            host, port = url, "6379"
        kw["host"] = host.strip("[]") or "localhost"
        kw["port"] = int(port)
    if password:
        kw["password"] = password
    return kw


class Publisher:
    """XADD with retry: while Redis is down, say so once and retry every
    second; a stop request ends the wait."""

    def __init__(self, kw, maxlen):
        self.kw = kw
        self.maxlen = maxlen
        self.r = redis.Redis(**kw)
        self.down_since = None

    def xadd(self, stream, fields):
        while not STOP:
            try:
                if self.maxlen > 0:
                    self.r.xadd(stream, fields, maxlen=self.maxlen, approximate=True)
                else:
                    self.r.xadd(stream, fields)
            except redis.AuthenticationError:
                raise  # a ConnectionError subclass, but waiting will not fix it
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log("redis unavailable (%s); retrying every second" % e)
                time.sleep(1.0)
                continue
            if self.down_since is not None:
                log("redis is back after %.0f s" % (time.monotonic() - self.down_since))
                self.down_since = None
            return True
        return False


def log(msg):
    sys.stderr.write("demo_feed: %s\n" % msg)
    sys.stderr.flush()


def on_signal(signum, frame):
    global STOP
    STOP = True


# -------------------------------------------------------------------- main


class Pacer:
    """Spaces entries at `rate` per second without drifting."""

    def __init__(self, rate):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    def wait(self):
        self.next += self.interval
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            self.next = time.monotonic()  # after a Redis outage, no burst


def main(argv=None):
    ap = argparse.ArgumentParser(description="Publish changing NBA odds to Redis Streams.")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "localhost:6379",
                    help="host:port, redis://[:password@]host:port[/db] or a socket path "
                         "(default: $REDIS_URL or localhost:6379)")
    ap.add_argument("--rate", type=float, default=20.0,
                    help="odds entries per second (default 20; 0 = as fast as possible)")
    ap.add_argument("--count", type=int, default=0,
                    help="stop after this many odds entries (default 0 = run until stopped)")
    ap.add_argument("--sport", default="basketball_nba",
                    help="sport key; entries go to odds.normalized.<sport> (default basketball_nba)")
    ap.add_argument("--maxlen", type=int, default=10000,
                    help="trim each stream to about this many entries (default 10000; 0 = never)")
    ap.add_argument("--opportunities-stream",
                    default=os.environ.get("OPPORTUNITIES_STREAM", "opportunities"),
                    help="stream for opportunities (default $OPPORTUNITIES_STREAM or "
                         "opportunities; empty = publish none)")
    ap.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable feed")
    args = ap.parse_args(argv)
    if args.rate < 0 or args.count < 0 or args.maxlen < 0:
        ap.error("--rate, --count and --maxlen must not be negative")

    try:
        kw = parse_redis_url(args.redis_url, os.environ.get("REDIS_PASSWORD") or None)
    except ValueError as e:
        ap.error("bad --redis-url %r: %s" % (args.redis_url, e))

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    rng = random.Random(args.seed)
    markets = build_markets(rng)
    stream = "odds.normalized." + args.sport
    pub = Publisher(kw, args.maxlen)
    pacer = Pacer(args.rate)
    sent = 0
    opportunities = 0
    flagged = set()  # opportunities already published and still open

    where = kw.get("unix_socket_path") or "%s:%s" % (kw["host"], kw["port"])
    log("publishing to %s on %s at %g entries/s%s" % (
        stream, where, args.rate, ", %d entries" % args.count if args.count else ""))

    def publish_outcome(m, b, i):
        nonlocal sent
        if not pub.xadd(stream, m.fields(args.sport, b, i)):
            return False
        sent += 1
        pacer.wait()
        return not (args.count and sent >= args.count)

    def check_opportunities(m, b):
        """Publish an opportunity when one opens; remember it until it
        closes so an open one is not repeated on every tick."""
        nonlocal opportunities
        if not args.opportunities_stream:
            return
        for i in (0, 1):
            f = m.fields(args.sport, b, i)
            key = ("ev", m.event_id, m.key, b, i)
            if float(f["edge"]) > POSITIVE_EV_EDGE and m.books[b]["line"] == m.line:
                if key in flagged:
                    continue
                flagged.add(key)
                opp = dict(f)
                opp["type"] = "positive_ev"
                opp["detected_at"] = utc_now()
                if pub.xadd(args.opportunities_stream, opp):
                    opportunities += 1
            else:
                flagged.discard(key)
        arb = m.arbitrage()
        key = ("arb", m.event_id, m.key)
        if arb is None:
            flagged.discard(key)
            return
        if key in flagged:
            return
        flagged.add(key)
        margin, leg0, leg1 = arb
        # Two books are involved, so the entry carries no book_key (which
        # would filter it by one of them) and lists both legs instead.
        data = {
            "type": "arbitrage",
            "event_id": m.event_id,
            "sport_key": args.sport,
            "market_key": m.key,
            "point": m.line,
            "edge": round(margin, 4),
            "legs": [
                {"book_key": leg0[0], "outcome_name": m.names[0], "price": leg0[1],
                 "decimal_odds": round(leg0[2], 4)},
                {"book_key": leg1[0], "outcome_name": m.names[1], "price": leg1[1],
                 "decimal_odds": round(leg1[2], 4)},
            ],
            "detected_at": utc_now(),
        }
        if pub.xadd(args.opportunities_stream, {"data": json.dumps(data)}):
            opportunities += 1

    def run():
        # The whole board first, so a fresh consumer sees every outcome.
        for m in markets:
            for b in BOOKS:
                m.requote(b)
        for m in markets:
            for b in BOOKS:
                for i in (0, 1):
                    if STOP or not publish_outcome(m, b, i):
                        return
        for m in markets:
            for b in BOOKS:
                check_opportunities(m, b)
        # Then changes only.
        while not STOP:
            m = rng.choice(markets)
            if rng.random() < 0.5:
                m.drift()
                movers = rng.sample(BOOKS, rng.randint(1, len(BOOKS)))
            else:
                movers = [rng.choice(BOOKS)]
            for b in movers:
                m.move_book(b)
                for i in m.requote(b):
                    if STOP or not publish_outcome(m, b, i):
                        return
                check_opportunities(m, b)

    try:
        run()
    except (redis.ResponseError, redis.AuthenticationError) as e:
        # Wrong password, a key of another type, OOM: retrying will not help.
        hint = ""
        if "auth" in str(e).lower() or "WRONGPASS" in str(e):
            hint = " (set REDIS_PASSWORD or put the password in the URL)"
        log("redis refused: %s%s" % (e, hint))
        return 1
    log("stopped after %d odds entries and %d opportunities" % (sent, opportunities))
    return 0


if __name__ == "__main__":
    sys.exit(main())
