/*
 * wsb-publish: paced publisher of realistic odds entries for the benchmark.
 * XADDs flat-field entries (the 13 fields the service knows, plus bench_ts,
 * CLOCK_REALTIME nanoseconds as a decimal string, taken just before the batch
 * is sent) to odds.normalized.<sport>, at --rate entries per second in total.
 *
 * Pacing: every tick (1 ms) it computes how many entries are due since the
 * start against CLOCK_MONOTONIC, pipelines that many XADDs in one write and
 * then reads their replies.  Falling behind (Redis slow, CPU taken) is caught
 * up in the next ticks, in batches of at most --batch-max, and reported as
 * lag; the achieved rate is printed at the end.
 *
 * Keys: sports x events x books x markets x 2 outcomes (the service's board
 * key is event, market, book, outcome).  The paced flow picks keys at
 * random, so it reaches all of them only after many times their number;
 * --prefill instead XADDs every key exactly once, as fast as Redis takes
 * them, and exits: a board of known size before any client connects.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PUB_MAX_LIST 64
#define PUB_TICK_NS  1000000LL

struct pub_list {
    char *items[PUB_MAX_LIST];
    int n;
};

static struct {
    char redis[512];
    double rate;
    double duration;
    long count;
    int events;
    long maxlen;
    long batch_max;
    struct pub_list sports, books, markets;
    const char *json_path;
    const char *label;
    int list_events;
    int prefill;
    int quiet;
} cfg;

/* One key of the board, as indexes into the lists above; outcome 0 or 1. */
struct pub_key {
    int sport, event, book, market, outcome;
};

static volatile sig_atomic_t pub_stop;

/* Eight teams per sport, in the order of the default --sports; events pair
 * them.  Only for realistic outcome names. */
static const char *const pub_teams[] = {
    "Boston Celtics",        "Los Angeles Lakers",   "Denver Nuggets",      "Miami Heat",
    "Golden State Warriors", "Milwaukee Bucks",      "Phoenix Suns",        "Dallas Mavericks",
    "Kansas City Chiefs",    "Philadelphia Eagles",  "San Francisco 49ers", "Buffalo Bills",
    "Detroit Lions",         "Baltimore Ravens",     "Dallas Cowboys",      "Green Bay Packers",
    "Edmonton Oilers",       "Florida Panthers",     "Boston Bruins",       "New York Rangers",
    "Colorado Avalanche",    "Vegas Golden Knights", "Toronto Maple Leafs", "Dallas Stars"};
#define PUB_NTEAMS (sizeof(pub_teams) / sizeof(pub_teams[0]))

static void
pub_usage(FILE *f)
{
    fprintf(f, "usage: wsb-publish [options]\n"
               "  -r, --rate N          entries per second in total (default 1000)\n"
               "  -d, --duration S      seconds to publish (default 10)\n"
               "  -n, --count N         stop after N entries (default: no limit)\n"
               "      --sports LIST     comma list (default basketball_nba,americanfootball_nfl,"
               "icehockey_nhl)\n"
               "      --events N        events per sport (default 20)\n"
               "      --books LIST      (default fanduel,draftkings,betmgm,caesars,pointsbetus)\n"
               "      --markets LIST    (default h2h,spreads,totals)\n"
               "      --redis ADDR      host:port or a unix socket path (default "
               "127.0.0.1:6379)\n"
               "      --maxlen N        XADD MAXLEN ~ N (default 100000; 0 = no trimming)\n"
               "      --batch-max N     most XADDs in one pipelined batch (default 5000)\n"
               "      --json FILE       append one JSON line with the results ('-' = stdout)\n"
               "      --label TEXT      copied into the JSON line\n"
               "      --list-events     print the event ids per sport and exit\n"
               "      --prefill         XADD every key (sports x events x books x markets x 2\n"
               "                        outcomes) once, as fast as Redis takes them, and exit\n"
               "  -q, --quiet\n");
}

static int
pub_parse_list(struct pub_list *l, const char *s)
{
    char *copy = strdup(s), *save = NULL;

    if (copy == NULL)
        return -1;
    for (int i = 0; i < l->n; i++)
        free(l->items[i]);
    l->n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*tok == '\0')
            continue;
        if (l->n == PUB_MAX_LIST || (l->items[l->n] = strdup(tok)) == NULL) {
            free(copy);
            return -1;
        }
        l->n++;
    }
    free(copy);
    return l->n > 0 ? 0 : -1;
}

/* A stable 32-hex event id, like the upstream feed's, from sport and index:
 * filter files can name events (see --list-events). */
static void
pub_event_id(const char *sport, int idx, char out[33])
{
    uint64_t h1 = 1469598103934665603ULL, h2;

    for (const char *p = sport; *p; p++)
        h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
    h1 ^= (uint64_t)idx * 0x9e3779b97f4a7c15ULL;
    h1 ^= h1 >> 31;
    h1 *= 0xbf58476d1ce4e5b9ULL;
    h1 ^= h1 >> 29;
    h2 = h1 * 0x94d049bb133111ebULL;
    h2 ^= h2 >> 32;
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

/*
 * Number formatting without printf: at 100,000+ entries per second, printf's
 * generic machinery was most of this process's CPU.
 */
static char *
pub_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *
pub_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return pub_u64(p, (uint64_t)(-(v + 1)) + 1);
    }
    return pub_u64(p, (uint64_t)v);
}

/* v with exactly decimals (1..6) digits after the point, rounded. */
static char *
pub_fixed(char *p, double v, int decimals)
{
    static const int64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    int64_t x = llround(v * (double)scale[decimals]);
    uint64_t ax, frac;

    if (x < 0) {
        *p++ = '-';
        ax = (uint64_t)(-x);
    } else {
        ax = (uint64_t)x;
    }
    p = pub_u64(p, ax / (uint64_t)scale[decimals]);
    *p++ = '.';
    frac = ax % (uint64_t)scale[decimals];
    for (int i = decimals - 1; i >= 0; i--) {
        p[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return p + decimals;
}

/* NUL-terminates a number written by one of the above into buf. */
#define PUB_NUM(buf, expr)                                                                         \
    do {                                                                                           \
        char *end_ = (expr);                                                                       \
        *end_ = '\0';                                                                              \
    } while (0)

/* Appends one RESP bulk string. */
static char *
pub_bulk(char *p, const char *s, size_t n)
{
    *p++ = '$';
    p = pub_u64(p, n);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, s, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static char *
pub_bulk_str(char *p, const char *s)
{
    return pub_bulk(p, s, strlen(s));
}

/* American odds from a decimal price. */
static int
pub_american(double dec)
{
    return dec >= 2.0 ? (int)lround((dec - 1.0) * 100.0) : (int)lround(-100.0 / (dec - 1.0));
}

/* A key picked at random, every one alike; *r gets the random bits that
 * move the prices. */
static void
pub_random_key(struct bench_rng *rng, struct pub_key *k, uint64_t *r)
{
    k->sport = (int)(bench_rng_next(rng) % (uint64_t)cfg.sports.n);
    k->book = (int)(bench_rng_next(rng) % (uint64_t)cfg.books.n);
    k->market = (int)(bench_rng_next(rng) % (uint64_t)cfg.markets.n);
    k->event = (int)(bench_rng_next(rng) % (uint64_t)cfg.events);
    *r = bench_rng_next(rng);
    k->outcome = (int)((*r >> 20) & 1);
}

/* Keys on the board: sports x events x books x markets x 2 outcomes. */
static uint64_t
pub_nkeys(void)
{
    return (uint64_t)cfg.sports.n * (uint64_t)cfg.events * (uint64_t)cfg.books.n *
           (uint64_t)cfg.markets.n * 2;
}

/* Key number i (0 .. pub_nkeys()-1), each exactly once. */
static void
pub_nth_key(uint64_t i, struct pub_key *k)
{
    k->outcome = (int)(i % 2);
    i /= 2;
    k->market = (int)(i % (uint64_t)cfg.markets.n);
    i /= (uint64_t)cfg.markets.n;
    k->book = (int)(i % (uint64_t)cfg.books.n);
    i /= (uint64_t)cfg.books.n;
    k->event = (int)(i % (uint64_t)cfg.events);
    k->sport = (int)(i / (uint64_t)cfg.events);
}

/*
 * Renders one XADD (RESP array) of key k into p; returns the end.  r moves
 * the prices a little with every entry, like a live market.
 */
static char *
pub_render(char *p, const struct pub_key *k, uint64_t r, int64_t ts_ns, const char *iso)
{
    int si = k->sport;
    const char *sport = cfg.sports.items[si];
    const char *book = cfg.books.items[k->book];
    const char *market = cfg.markets.items[k->market];
    int ev = k->event;
    char stream[160], evid[33], num[8][32], tsbuf[24], maxlen[24];
    const char *outcome;
    double implied = 0.35 + (double)(r % 3000) / 10000.0; /* 0.35 .. 0.65 */
    double vig = 1.045, dec, novig, fair_dec, edge;
    int fields = 14, args;

    pub_event_id(sport, ev, evid);
    memcpy(stream, "odds.normalized.", 16);
    snprintf(stream + 16, sizeof(stream) - 16, "%s", sport);
    if (strcmp(market, "totals") == 0)
        outcome = k->outcome ? "Over" : "Under";
    else
        outcome =
            pub_teams[((size_t)si * 8 + ((size_t)ev * 2 + (size_t)k->outcome) % 8) % PUB_NTEAMS];
    dec = 1.0 / (implied * vig / 1.0);
    if (dec < 1.01)
        dec = 1.01;
    /* The fair probability strays a little from the book's: edges differ. */
    novig = implied * (0.94 + (double)((r >> 40) % 80) / 1000.0);
    fair_dec = 1.0 / novig;
    edge = novig * dec - 1.0;
    PUB_NUM(num[0], pub_i64(num[0], pub_american(dec)));
    if (strcmp(market, "spreads") == 0)
        PUB_NUM(num[1], pub_fixed(num[1], (double)((r >> 24) % 25) - 12.5, 1));
    else if (strcmp(market, "totals") == 0)
        PUB_NUM(num[1], pub_fixed(num[1], 200.5 + (double)((r >> 24) % 40), 1));
    else
        num[1][0] = '\0'; /* h2h has no point: the service sends null */
    PUB_NUM(num[2], pub_fixed(num[2], dec, 3));
    PUB_NUM(num[3], pub_fixed(num[3], 1.0 / dec, 4));
    PUB_NUM(num[4], pub_fixed(num[4], novig, 4));
    PUB_NUM(num[5], pub_i64(num[5], pub_american(fair_dec)));
    PUB_NUM(num[6], pub_fixed(num[6], edge, 4));
    PUB_NUM(tsbuf, pub_i64(tsbuf, ts_ns));

    args = 2 + (cfg.maxlen > 0 ? 3 : 0) + 1 + 2 * fields;
    *p++ = '*';
    p = pub_u64(p, (uint64_t)args);
    *p++ = '\r';
    *p++ = '\n';
    p = pub_bulk_str(p, "XADD");
    p = pub_bulk_str(p, stream);
    if (cfg.maxlen > 0) {
        PUB_NUM(maxlen, pub_i64(maxlen, cfg.maxlen));
        p = pub_bulk_str(p, "MAXLEN");
        p = pub_bulk_str(p, "~");
        p = pub_bulk_str(p, maxlen);
    }
    p = pub_bulk_str(p, "*");
    p = pub_bulk_str(p, "event_id");
    p = pub_bulk_str(p, evid);
    p = pub_bulk_str(p, "sport_key");
    p = pub_bulk_str(p, sport);
    p = pub_bulk_str(p, "market_key");
    p = pub_bulk_str(p, market);
    p = pub_bulk_str(p, "book_key");
    p = pub_bulk_str(p, book);
    p = pub_bulk_str(p, "outcome_name");
    p = pub_bulk_str(p, outcome);
    p = pub_bulk_str(p, "price");
    p = pub_bulk_str(p, num[0]);
    p = pub_bulk_str(p, "point");
    p = pub_bulk_str(p, num[1]);
    p = pub_bulk_str(p, "decimal_odds");
    p = pub_bulk_str(p, num[2]);
    p = pub_bulk_str(p, "implied_probability");
    p = pub_bulk_str(p, num[3]);
    p = pub_bulk_str(p, "novig_probability");
    p = pub_bulk_str(p, num[4]);
    p = pub_bulk_str(p, "fair_price");
    p = pub_bulk_str(p, num[5]);
    p = pub_bulk_str(p, "edge");
    p = pub_bulk_str(p, num[6]);
    p = pub_bulk_str(p, "normalized_at");
    p = pub_bulk_str(p, iso);
    p = pub_bulk_str(p, "bench_ts");
    p = pub_bulk_str(p, tsbuf);
    return p;
}

#define PUB_ENTRY_MAX 2048

static redisContext *
pub_connect(const char *addr)
{
    struct timeval tv = {5, 0};
    redisContext *c;
    char host[256];
    int port;

    if (addr[0] == '/' || strncmp(addr, "unix:", 5) == 0) {
        c = redisConnectUnixWithTimeout(addr[0] == '/' ? addr : addr + 5, tv);
    } else {
        if (bench_split_hostport(addr, host, sizeof(host), &port) != 0) {
            fprintf(stderr, "wsb-publish: bad --redis %s (host:port or /socket/path)\n", addr);
            return NULL;
        }
        c = redisConnectWithTimeout(host, port, tv);
    }
    if (c == NULL || c->err) {
        fprintf(stderr, "wsb-publish: cannot connect to Redis at %s: %s\n", addr,
                c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    /* Replies can take long under load; never time out while reading them. */
    tv.tv_sec = 0;
    (void)redisSetTimeout(c, tv); /* a zero timeout means "block" */
    return c;
}

/* Writes hiredis's output buffer out (blocking).  Returns 0 or -1. */
static int
pub_flush(redisContext *rc)
{
    int done = 0;

    while (!done) {
        if (redisBufferWrite(rc, &done) != REDIS_OK)
            return -1;
    }
    return 0;
}

/* Reads n XADD replies, counting errors.  Returns 0, or -1 if the
 * connection is lost. */
static int
pub_replies(redisContext *rc, uint64_t n, uint64_t *errors)
{
    for (uint64_t i = 0; i < n; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(rc, (void **)&reply) != REDIS_OK || reply == NULL) {
            fprintf(stderr, "wsb-publish: Redis connection lost: %s\n", rc->errstr);
            return -1;
        }
        if (reply->type == REDIS_REPLY_ERROR && (*errors)++ < 5)
            fprintf(stderr, "wsb-publish: XADD failed: %s\n", reply->str);
        freeReplyObject(reply);
    }
    return 0;
}

static void
pub_on_signal(int sig)
{
    (void)sig;
    pub_stop = 1;
}

static void
pub_iso_now(char out[32])
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        out[0] = '\0';
}

/*
 * XADDs every key once, in batches of --batch-max, each batch's replies
 * read before the next is sent (Redis's reply buffer stays small).  Writes
 * the JSON line if asked.  Returns 0 if every XADD succeeded.
 */
static int
pub_prefill(redisContext *rc, char *buf, struct bench_rng *rng)
{
    uint64_t total = pub_nkeys(), sent = 0, errors = 0;
    int64_t t0 = bench_mono_ns();
    double elapsed;
    char iso[32];

    while (sent < total && !pub_stop) {
        uint64_t n =
            total - sent < (uint64_t)cfg.batch_max ? total - sent : (uint64_t)cfg.batch_max;
        int64_t ts = bench_real_ns();
        char *p = buf;

        pub_iso_now(iso);
        for (uint64_t i = 0; i < n; i++) {
            struct pub_key k;
            pub_nth_key(sent + i, &k);
            p = pub_render(p, &k, bench_rng_next(rng), ts, iso);
        }
        if (redisAppendFormattedCommand(rc, buf, (size_t)(p - buf)) != REDIS_OK ||
            pub_flush(rc) != 0) {
            fprintf(stderr, "wsb-publish: sending to Redis failed: %s\n", rc->errstr);
            break;
        }
        if (pub_replies(rc, n, &errors) != 0)
            break;
        sent += n;
    }
    elapsed = (double)(bench_mono_ns() - t0) / 1e9;
    if (!cfg.quiet || cfg.json_path == NULL || strcmp(cfg.json_path, "-") != 0)
        printf("wsb-publish: prefilled %llu of %llu keys (%llu errors) in %.3f s\n",
               (unsigned long long)sent, (unsigned long long)total, (unsigned long long)errors,
               elapsed);
    if (cfg.json_path != NULL) {
        FILE *out = strcmp(cfg.json_path, "-") == 0 ? stdout : fopen(cfg.json_path, "a");
        if (out == NULL) {
            fprintf(stderr, "wsb-publish: cannot open %s: %s\n", cfg.json_path, strerror(errno));
        } else {
            fprintf(out, "{\"tool\":\"wsb-publish\",\"mode\":\"prefill\",\"label\":");
            bench_json_str(out, cfg.label ? cfg.label : "");
            fprintf(out,
                    ",\"keys\":%llu,\"prefilled\":%llu,\"xadd_errors\":%llu,\"elapsed_s\":%.3f,"
                    "\"sports\":%d,\"events\":%d,\"books\":%d,\"markets\":%d}\n",
                    (unsigned long long)total, (unsigned long long)sent, (unsigned long long)errors,
                    elapsed, cfg.sports.n, cfg.events, cfg.books.n, cfg.markets.n);
            if (out != stdout)
                fclose(out);
            else
                fflush(out);
        }
    }
    return sent == total && errors == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"rate", required_argument, NULL, 'r'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"sports", required_argument, NULL, 'S'},
                                         {"events", required_argument, NULL, 'E'},
                                         {"books", required_argument, NULL, 'B'},
                                         {"markets", required_argument, NULL, 'M'},
                                         {"redis", required_argument, NULL, 'R'},
                                         {"maxlen", required_argument, NULL, 'X'},
                                         {"batch-max", required_argument, NULL, 'b'},
                                         {"json", required_argument, NULL, 'j'},
                                         {"label", required_argument, NULL, 'L'},
                                         {"list-events", no_argument, NULL, 'l'},
                                         {"prefill", no_argument, NULL, 'F'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    redisContext *rc;
    struct bench_rng rng;
    char *buf;
    int opt;
    long v;
    uint64_t sent = 0, errors = 0, batches = 0, max_batch = 0, inflight = 0;
    int64_t t0, t_end, max_lag = 0, now;
    double elapsed, achieved;
    char iso[32];
    struct sigaction sa;

    snprintf(cfg.redis, sizeof(cfg.redis), "127.0.0.1:6379");
    cfg.rate = 1000;
    cfg.duration = 10;
    cfg.events = 20;
    cfg.maxlen = 100000;
    cfg.batch_max = 5000;
    if (pub_parse_list(&cfg.sports, "basketball_nba,americanfootball_nfl,icehockey_nhl") != 0 ||
        pub_parse_list(&cfg.books, "fanduel,draftkings,betmgm,caesars,pointsbetus") != 0 ||
        pub_parse_list(&cfg.markets, "h2h,spreads,totals") != 0)
        return 1;
    while ((opt = getopt_long(argc, argv, "r:d:n:qh", opts, NULL)) != -1) {
        double s;
        switch (opt) {
        case 'r':
            if ((s = bench_parse_seconds(optarg)) < 0)
                goto bad;
            cfg.rate = s;
            break;
        case 'd':
            if ((s = bench_parse_seconds(optarg)) < 0)
                goto bad;
            cfg.duration = s;
            break;
        case 'n':
            if (bench_parse_long(optarg, 1, 1L << 40, &cfg.count) != 0)
                goto bad;
            break;
        case 'S':
        case 'B':
        case 'M':
            if (pub_parse_list(opt == 'S'   ? &cfg.sports
                               : opt == 'B' ? &cfg.books
                                            : &cfg.markets,
                               optarg) != 0)
                goto bad;
            break;
        case 'E':
            if (bench_parse_long(optarg, 1, 1000000, &v) != 0)
                goto bad;
            cfg.events = (int)v;
            break;
        case 'R':
            snprintf(cfg.redis, sizeof(cfg.redis), "%s", optarg);
            break;
        case 'X':
            if (bench_parse_long(optarg, 0, 1L << 40, &cfg.maxlen) != 0)
                goto bad;
            break;
        case 'b':
            if (bench_parse_long(optarg, 1, 1000000, &cfg.batch_max) != 0)
                goto bad;
            break;
        case 'j':
            cfg.json_path = optarg;
            break;
        case 'L':
            cfg.label = optarg;
            break;
        case 'l':
            cfg.list_events = 1;
            break;
        case 'F':
            cfg.prefill = 1;
            break;
        case 'q':
            cfg.quiet = 1;
            break;
        case 'h':
            pub_usage(stdout);
            return 0;
        default:
            pub_usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "wsb-publish: bad value for option: %s\n", optarg);
        return 2;
    }
    if (cfg.list_events) {
        for (int s = 0; s < cfg.sports.n; s++) {
            for (int e = 0; e < cfg.events; e++) {
                char id[33];
                pub_event_id(cfg.sports.items[s], e, id);
                printf("%s %d %s\n", cfg.sports.items[s], e, id);
            }
        }
        return 0;
    }
    if (cfg.rate <= 0 && !cfg.prefill) {
        fprintf(stderr, "wsb-publish: --rate must be above 0\n");
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pub_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = pub_connect(cfg.redis);
    if (rc == NULL)
        return 1;
    buf = malloc((size_t)cfg.batch_max * PUB_ENTRY_MAX);
    if (buf == NULL)
        return 1;
    bench_rng_seed(&rng);
    if (cfg.prefill) {
        int rc_prefill = pub_prefill(rc, buf, &rng);
        redisFree(rc);
        free(buf);
        return rc_prefill == 0 ? 0 : 1;
    }

    t0 = bench_mono_ns();
    t_end = t0 + (int64_t)(cfg.duration * 1e9);
    while (!pub_stop) {
        uint64_t due, n;
        int64_t ts;
        char *p = buf;

        now = bench_mono_ns();
        if (now >= t_end)
            break;
        due = (uint64_t)((double)(now - t0) / 1e9 * cfg.rate) + 1;
        if (cfg.count > 0 && due > (uint64_t)cfg.count)
            due = (uint64_t)cfg.count;
        if (due <= sent) {
            if (cfg.count > 0 && sent >= (uint64_t)cfg.count)
                break;
            /* Idle until the next entry: collect what Redis answered. */
            if (pub_replies(rc, inflight, &errors) != 0)
                break;
            inflight = 0;
            /* Sleep to the next entry's time, at most a tick. */
            int64_t next = t0 + (int64_t)((double)(sent + 1) * 1e9 / cfg.rate);
            int64_t wait = next - now;
            struct timespec sl;
            if (wait > PUB_TICK_NS)
                wait = PUB_TICK_NS;
            if (wait > 0) {
                sl.tv_sec = 0;
                sl.tv_nsec = wait;
                nanosleep(&sl, NULL);
            }
            continue;
        }
        n = due - sent;
        /* Lag: how late the oldest entry of this batch is against its slot. */
        {
            int64_t slot = t0 + (int64_t)((double)sent * 1e9 / cfg.rate);
            if (now - slot > max_lag)
                max_lag = now - slot;
        }
        if (n > (uint64_t)cfg.batch_max)
            n = (uint64_t)cfg.batch_max;
        pub_iso_now(iso);
        ts = bench_real_ns();
        for (uint64_t i = 0; i < n; i++) {
            struct pub_key k;
            uint64_t r;
            pub_random_key(&rng, &k, &r);
            p = pub_render(p, &k, r, ts, iso);
        }
        if (redisAppendFormattedCommand(rc, buf, (size_t)(p - buf)) != REDIS_OK ||
            pub_flush(rc) != 0) {
            fprintf(stderr, "wsb-publish: sending to Redis failed: %s\n", rc->errstr);
            break;
        }
        /* The previous batch's replies, while Redis works on this one. */
        if (pub_replies(rc, inflight, &errors) != 0)
            break;
        inflight = n;
        sent += n;
        batches++;
        if (n > max_batch)
            max_batch = n;
    }
    if (pub_replies(rc, inflight, &errors) != 0)
        sent -= inflight; /* connection lost: those were not confirmed */
    now = bench_mono_ns();
    elapsed = (double)(now - t0) / 1e9;
    achieved = elapsed > 0 ? (double)(sent - errors) / elapsed : 0;
    if (!cfg.quiet || cfg.json_path == NULL || strcmp(cfg.json_path, "-") != 0)
        printf("wsb-publish: %llu entries (%llu errors) in %.3f s: %.0f/s of %.0f/s asked; "
               "%llu batches, largest %llu, worst lag %.1f ms\n",
               (unsigned long long)sent, (unsigned long long)errors, elapsed, achieved, cfg.rate,
               (unsigned long long)batches, (unsigned long long)max_batch, (double)max_lag / 1e6);
    if (cfg.json_path != NULL) {
        FILE *out = strcmp(cfg.json_path, "-") == 0 ? stdout : fopen(cfg.json_path, "a");
        if (out == NULL) {
            fprintf(stderr, "wsb-publish: cannot open %s: %s\n", cfg.json_path, strerror(errno));
        } else {
            fprintf(out, "{\"tool\":\"wsb-publish\",\"label\":");
            bench_json_str(out, cfg.label ? cfg.label : "");
            fprintf(out,
                    ",\"published\":%llu,\"xadd_errors\":%llu,\"elapsed_s\":%.3f,"
                    "\"rate_asked\":%.1f,\"rate_achieved\":%.1f,\"batches\":%llu,"
                    "\"max_batch\":%llu,\"max_lag_ms\":%.3f,\"sports\":%d,\"events\":%d,"
                    "\"books\":%d,\"markets\":%d}\n",
                    (unsigned long long)sent, (unsigned long long)errors, elapsed, cfg.rate,
                    achieved, (unsigned long long)batches, (unsigned long long)max_batch,
                    (double)max_lag / 1e6, cfg.sports.n, cfg.events, cfg.books.n, cfg.markets.n);
            if (out != stdout)
                fclose(out);
            else
                fflush(out);
        }
    }
    redisFree(rc);
    free(buf);
    return sent > 0 && errors == 0 ? 0 : 1;
}
