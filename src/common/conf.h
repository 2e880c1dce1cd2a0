/*
 * conf: the service's settings, their defaults and their validation.
 *
 * Sources, in increasing precedence: built-in defaults, the config file
 * (KEY=VALUE lines, '#' comments, blank lines; an optional "export " prefix
 * and surrounding quotes are accepted so a .env file reads the same), then
 * environment variables of the same names.  Every bad value is refused with
 * a message that names the key.
 *
 * struct conf holds no pointers, so a copy is a snapshot: the supervisor
 * forks children with its current copy and can parse a reload into a fresh
 * one without touching the running configuration.  I/O-free apart from
 * reading the file; never logs (errors go into the caller's buffer).
 */
#ifndef WSB_CONF_H
#define WSB_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_SPORTS   32
#define CONF_NAME_MAX     64  /* sport keys, consumer group and id */
#define CONF_STREAM_MAX   128 /* stream names, with the terminating NUL */
#define CONF_HOST_MAX     256
#define CONF_MAX_WORKERS  64
#define CONF_DEFAULT_PATH "etc/ws-broadcaster.conf"
#define CONF_ODDS_PREFIX  "odds.normalized."

enum conf_auth { CONF_AUTH_OFF = 0, CONF_AUTH_REQUIRED, CONF_AUTH_OPTIONAL };

struct conf {
    /* SERVER_ADDR: ":PORT" = all interfaces (host empty), or "HOST:PORT". */
    char server_addr[CONF_HOST_MAX + 8];
    char server_host[CONF_HOST_MAX];
    int server_port;

    /* METRICS_ADDR: a listener of its own for /metrics, /health, /livez and
     * /readyz (metrics_port 0: none), so that metrics need not be public;
     * METRICS_PUBLIC off: /metrics is not served on SERVER_ADDR. */
    char metrics_addr[CONF_HOST_MAX + 8];
    char metrics_host[CONF_HOST_MAX];
    int metrics_port;
    int metrics_public;
    uint32_t ready_max_lag; /* READY_MAX_LAG, seconds */

    /* REDIS_URL as given, and what it resolves to.  redis_unix non-empty
     * means a unix socket; else redis_host:redis_port.  REDIS_PASSWORD, when
     * set, wins over a password in the URL. */
    char redis_url[512];
    char redis_host[CONF_HOST_MAX];
    int redis_port;
    char redis_unix[108];
    char redis_password[256];     /* REDIS_PASSWORD */
    char redis_url_password[256]; /* from redis://:pw@host */
    int redis_url_password_set;
    int redis_db;

    char sports[CONF_MAX_SPORTS][CONF_NAME_MAX];
    int nsports;
    char opportunities_stream[CONF_STREAM_MAX]; /* empty: disabled */
    char consumer_group[CONF_NAME_MAX];
    char consumer_id[CONF_NAME_MAX];

    int workers;
    uint32_t client_buffer;     /* messages queued per client before it is cut off */
    uint32_t ring_size;         /* frames; a power of two */
    uint32_t max_message_size;  /* bytes of one client message */
    uint32_t max_entry_size;    /* bytes of one stream entry's frame */
    uint32_t max_filter_values; /* values per filter list */
    uint32_t max_filter_value_len;
    uint32_t read_count; /* entries per XREADGROUP */

    /* Limits that protect the service from its clients (README "Limits and
     * security"). */
    char allowed_origins[1024]; /* comma list; empty: any Origin */
    uint32_t handshake_timeout; /* seconds to complete the HTTP/upgrade request */
    uint32_t max_header_size;   /* bytes of request headers */
    uint32_t ping_interval;     /* seconds of silence before the server pings; 0: never */
    uint32_t ping_timeout;      /* seconds after that ping before hanging up */
    uint32_t max_clients;       /* WebSocket clients per instance */
    uint32_t max_clients_per_ip;
    uint32_t conflate_at;            /* queued messages from which a client is conflated; 0: auto */
    uint32_t client_buffer_bytes;    /* bytes queued per client before it is cut off */
    uint32_t client_max_lag;         /* seconds the oldest queued message may wait */
    uint32_t rate_limit;             /* client messages per second (token bucket rate) */
    uint32_t rate_burst;             /* bucket size */
    uint32_t close_timeout;          /* seconds from a close to the TCP reset */
    uint32_t send_timeout;           /* seconds a socket may take nothing while data waits */
    uint32_t max_connections;        /* TCP connections per instance; 0: auto */
    uint32_t max_connections_per_ip; /* TCP connections per address; 0: auto */
    uint32_t http_idle_timeout;      /* seconds a keep-alive connection may idle */
    uint32_t ipv6_prefix;            /* bits of an IPv6 address that name a client */
    uint32_t max_filter_values_per_ip;

    /* Who may see what (README "Authentication"). */
    int auth;               /* enum conf_auth */
    char auth_algorithm[8]; /* "auto", HS256, RS256, ES256 */
    char auth_hs256_secret_file[512];
    char auth_public_key_file[512];
    uint32_t auth_leeway;    /* seconds, for exp, nbf, iat */
    char auth_audience[256]; /* "" = not checked */
    char auth_issuer[256];
    uint32_t auth_timeout;      /* seconds to authenticate by message */
    char anonymous[1024];       /* JSON claims of anonymous clients (AUTH=optional) */
    char trusted_proxies[1024]; /* comma list of addresses and CIDRs (proxies.h) */
    int proxy_protocol;         /* 0 off, 1 on */

    /* The consistent board (README "Consistency"). */
    uint32_t snapshot_chunk;     /* items per snapshot message */
    uint32_t snapshot_ttl;       /* seconds an odds key lives without an update */
    uint32_t snapshot_max_keys;  /* keys the snapshot table holds */
    uint32_t opportunity_ttl;    /* seconds an opportunity is in snapshots */
    uint32_t resume_max_entries; /* matching entries replayed from Redis at most */

    /* Stopping (README "Operations"). */
    uint32_t drain_seconds;       /* SIGTERM: clients are closed spread over this many seconds */
    uint32_t reconnect_jitter_ms; /* ... each told to reconnect after a random 0..this ms */

    int log_level;  /* enum log_level */
    int log_format; /* enum log_format */
};

/*
 * The settings table, conf_keys[]: one row per setting, in the order `-t`
 * prints them, reload warnings list them and the docs list them.  A row says
 * where the value lives in struct conf and what type it is; from that alone
 * conf_set parses it (file and environment included), conf_get prints it,
 * conf_defaults sets it and conf_restart_keys_changed compares it.  A plain
 * number is one row and one field; a type that needs more brings its own
 * parse (and format) function.
 */
enum conf_type {
    CONF_TYPE_U32,    /* uint32_t, from min to max */
    CONF_TYPE_INT,    /* int; the row's parse function reads it */
    CONF_TYPE_STRING, /* char[size], NUL-terminated */
    CONF_TYPE_SECRET, /* a STRING that conf_get shows only as "(set)" or "" */
    CONF_TYPE_CUSTOM, /* parse and format given; compared by its text form */
    CONF_TYPE_CHOICE, /* int: the index of one of the row's choices */
};

struct conf_key {
    const char *name;
    const char *default_value;
    int reloadable; /* 1: SIGHUP applies it (sup_reload); 0: needs a restart */
    const char *help;
    enum conf_type type;
    size_t offset;              /* offsetof(struct conf, field) */
    size_t size;                /* sizeof that field */
    uint32_t min, max;          /* bounds of a number (U32 rows, WORKERS) */
    const char *const *choices; /* a CONF_TYPE_CHOICE's names, NULL-terminated: the int is the
                                 * index */
    /* NULL: the type's own.  parse stores value, and may fill fields that
     * follow from it (SERVER_ADDR's host and port), or returns -1 with
     * "KEY: why" in err.  format writes what conf_get gives: a text parse
     * reads back to the same value, and all of it (CUSTOM rows are compared
     * by it); only a password is masked (a SECRET, REDIS_URL's). */
    int (*parse)(struct conf *c, const struct conf_key *k, const char *value, char *err,
                 size_t errlen);
    int (*format)(const struct conf *c, const struct conf_key *k, char *buf, size_t size);
};

extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

/* The row of setting name, or NULL if there is none. */
const struct conf_key *conf_key_find(const char *name);

/* Every setting at its default.  A default that does not parse, or a row
 * that does not fit its field, is a bug in the table: logged, then abort. */
void conf_defaults(struct conf *c);

/* Set one key from its text form.  Returns 0, or -1 with "KEY: why" in err
 * (unknown keys included).  A failure may leave that key half-set: callers
 * keep no struct whose load failed. */
int conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errlen);

/* Read a config file into c.  Returns 0, or -1 with "PATH:LINE: KEY: why" in
 * err.  A missing file is an error. */
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);

/* Apply the environment variables that name a setting.  0 or -1 as above. */
int conf_apply_env(struct conf *c, char *err, size_t errlen);

/* Checks that involve more than one key.  0 or -1 with a message. */
int conf_check(const struct conf *c, char *err, size_t errlen);

/* Derive the settings left at "auto" (MAX_CONNECTIONS from MAX_CLIENTS,
 * MAX_CONNECTIONS_PER_IP from MAX_CLIENTS_PER_IP, CONFLATE_AT from
 * CLIENT_BUFFER, CONSUMER_ID from this host's name and SERVER_ADDR's port:
 * conf_consumer_id).  conf_load does it.  Reads the host name
 * (gethostname), nothing else. */
void conf_resolve_auto(struct conf *c);

/* The default CONSUMER_ID for host name `host` and listening port `port`:
 * "<host>-<port>", each byte of host that a name may not hold (conf's
 * names: letters, digits, _ - .) replaced by '-', host cut so that the
 * whole fits CONF_NAME_MAX, "localhost" for an empty host.  Replicas
 * started from one image or unit get different ids (their host names
 * differ), so they never share a group by accident.  Into buf (at least
 * CONF_NAME_MAX bytes).  Pure. */
void conf_consumer_id(const char *host, int port, char *buf, size_t size);

/* Whether a shared region of region bytes (shm_region_size for c's
 * RING_SIZE, MAX_ENTRY_SIZE and WORKERS) fits in memory of memory bytes,
 * named memory_name in the message ("MemTotal", "RLIMIT_AS"): at most half
 * of it, the other half being left to the clients' buffers, the kernel and
 * a Redis on the same host.  0, or -1 with "RING_SIZE: why" in err.  Pure:
 * the caller finds the numbers. */
int conf_check_memory(const struct conf *c, uint64_t region, uint64_t memory,
                      const char *memory_name, char *err, size_t errlen);

/* Defaults, then the file (if path is NULL, CONF_DEFAULT_PATH when it
 * exists), then the environment, then conf_check. */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);

/* The text form of one setting of c (as conf_set accepts it; a SECRET only
 * as "(set)" or "", REDIS_URL with its password as ***) into buf, truncated
 * to size.  What `-t` and the logs show.  0, or -1 for an unknown key. */
int conf_get(const struct conf *c, const char *key, char *buf, size_t size);

/* Comma-separated names of the non-reloadable keys whose values differ
 * between a and b (a SECRET by its real value), in table order; empty if
 * none.  Truncated to size, always terminated. */
void conf_restart_keys_changed(const struct conf *a, const struct conf *b, char *buf, size_t size);

/* The password to AUTH with: REDIS_PASSWORD, else the URL's; NULL if none. */
const char *conf_redis_password(const struct conf *c);

/* Stream name of sport i: "odds.normalized.<sport>". */
int conf_sport_stream(const struct conf *c, int i, char *buf, size_t size);

#endif
