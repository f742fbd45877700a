/*
 * carechat-bench - load generator for any server speaking the carechat
 * protocol (chat-websocket-api.md), in the spirit of redis-benchmark.
 *
 * Set-up (blocking, not measured): mint HS256 tokens from the shared
 * secret (or read them from a file), register profiles and create chats
 * over REST.  Then, on one libevent loop: open N WebSockets spread over M
 * chats (both parties, N/M/2 devices each), send for D seconds at a fixed
 * rate or as fast as a per-connection window allows, and count every
 * delivery.  Content carries the send time, so end-to-end latency is
 * measured on the receiving side (same host, CLOCK_MONOTONIC).
 *
 * Modes:  (default) messages | --handshakes | --idle
 * Output: a table, or JSON with --json.  Every loop is bounded in count
 * and time; the server is on loopback unless told otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOURCES 64
#define MAX_NODES 16
#define TOKEN_MAX 2048
#define DRAIN_S 5
#define TICK_MIN_NS 50000 /* the fixed rate's timer: at most 20,000/s */

enum mode { MODE_MESSAGES, MODE_HANDSHAKES, MODE_IDLE };

/* A server node: -H ADDR[:PORT], repeated for several. */
struct node {
    char host[64];
    int port;                /* from ADDR:PORT, else -p */
    struct sockaddr_in sa;
};

struct opts {
    const char *host;        /* node 0: REST set-up goes there */
    int port;
    struct node nodes[MAX_NODES];
    int n_nodes;
    const char *secret;
    const char *tokens_file;
    const char *admin_claim;
    int conns, chats;
    double duration;
    double rate;             /* messages/s in all; 0: as fast as possible */
    int window;              /* own messages in flight per sender */
    int senders;             /* 0: every connection sends */
    int json;
    long pids[MAX_NODES]; /* --pid, one per node: summed */
    int n_pids;
    enum mode mode;
    int max_pending;         /* handshakes in flight */
    struct in_addr sources[MAX_SOURCES];
    int n_sources;
    size_t content_size;
    int tls;                 /* wss and https */
    int resume;              /* TLS: offer each slot's last session */
    int receipts;            /* ?receipts=1, and mark each message read */
    const char *cafile;      /* to verify the server; else the system's */
};

/* With --tls: the client context, made once; verifies the server. */
static SSL_CTX *tls_ctx;

/* Log-linear latency histogram over nanoseconds: 16 sub-buckets per
 * power of two (about 6% resolution), enough for p99.9 of a benchmark. */
#define HIST_SUB 16
#define HIST_BUCKETS (64 * HIST_SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n, max;
};

static int hist_index(uint64_t v)
{
    int e;

    if (v < HIST_SUB)
        return (int)v;
    e = 63 - __builtin_clzll(v);
    return (e - 3) * HIST_SUB + (int)((v >> (e - 4)) & (HIST_SUB - 1));
}

static uint64_t hist_value(int i)
{
    int e = i / HIST_SUB + 3, sub = i % HIST_SUB;

    if (i < HIST_SUB)
        return (uint64_t)i;
    return ((uint64_t)(HIST_SUB + sub) << (e - 4)) +
           ((uint64_t)1 << (e - 4)) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
    int i = hist_index(v);

    h->count[i < HIST_BUCKETS ? i : HIST_BUCKETS - 1]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;

    if (!h->n)
        return 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_value(i) < h->max ? hist_value(i) : h->max;
    }
    return h->max;
}

struct chat {
    char id[37];
    char tok[2][TOKEN_MAX];  /* patient, professional */
    int members;
};

enum cstate { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct conn {
    struct bench *b;
    struct bufferevent *bev;
    int idx, chat, side;
    enum cstate state;
    uint64_t t_start;
    int inflight;            /* own messages not yet echoed */
    int sender;
    uint64_t t_unsent;       /* stamp of the oldest message not written */
    SSL_SESSION *sess;       /* --resume: this slot's last TLS session */
};

/* What the TLS handshakes negotiated, as the first one saw it (one
 * server configuration gives them all): the protocol, the key exchange
 * group and the server certificate's key; and how many were resumed. */
struct tls_seen {
    char protocol[16], group[32], key[48];
    uint64_t resumed;
};

/* CPU time over the measured part, in clock ticks (USER_HZ): the
 * machine's idle and stolen time from /proc/stat, and the bench's and
 * the server's own from /proc/PID/stat, each with the moment it was
 * read.  ok is 0 where /proc/stat is missing; server is -1 without
 * --pid (with several, one per node, it is their sum).
 *
 * The machine's busy time is what the clock says minus idle, iowait and
 * steal, not the sum of /proc/stat's busy columns: with a tickless idle
 * (CONFIG_NO_HZ_IDLE) and tick-based accounting, idle is measured
 * exactly but user and system are sampled by the 250 Hz tick, and a CPU
 * that wakes for bursts shorter than a tick is rarely found busy.  At
 * 5,000 messages/s the columns summed to 83% of the elapsed time here,
 * and their busy share fell below carechatd's and the bench's own
 * (which the kernel scales to the exact run time). */
static uint64_t now_ns(void);

struct cpu_times {
    int ok, ncpu;
    uint64_t t_ns;
    unsigned long long idle, steal;
    long long self, server;
};

/* utime + stime of process pid, in ticks; -1 when unknown. */
static long long proc_ticks(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After "pid (comm)": state is field 3, utime 14, stime 15. */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
               "%llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* of(pid) summed over the --pid processes (their ticks, their RSS); -1
 * when there is none, or one is unknown (a node that exited: the sum
 * would understate the servers). */
static long long servers_sum(const struct opts *o, long long (*of)(long))
{
    long long sum = 0;

    for (int i = 0; i < o->n_pids; i++) {
        long long v = of(o->pids[i]);
        if (v < 0)
            return -1;
        sum += v;
    }
    return o->n_pids ? sum : -1;
}

static void read_cpu(struct cpu_times *t, const struct opts *o)
{
    unsigned long long v[8] = { 0 };
    char line[512];
    FILE *f = fopen("/proc/stat", "r");

    memset(t, 0, sizeof *t);
    t->self = proc_ticks((long)getpid());
    t->server = servers_sum(o, proc_ticks);
    t->t_ns = now_ns();
    if (!f)
        return;
    /* user nice system idle iowait irq softirq steal */
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
        t->ok = 1;
        t->idle = v[3] + v[4];
        t->steal = v[7];
    }
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu", 3) && line[3] >= '0' && line[3] <= '9')
            t->ncpu++;
    fclose(f);
}

/* Shares of the machine's time between a and b (all its CPUs, so 100
 * is every CPU all the time): busy, stolen by the hypervisor, and the
 * bench's and the server's own; -1 when unknown.  busy counts every
 * process, so busy + steal is at least bench + server (to a tick or
 * two); busy alone may fall short by what the hypervisor took from a
 * CPU waking from idle, which /proc/stat counts as idle and as steal. */
struct cpu_pct {
    double busy, steal, bench, server;
};

static double pct_of(double ticks, double total)
{
    double v = 100.0 * ticks / total;

    return v < 0 ? 0 : v > 100 ? 100 : v;
}

static void cpu_share(const struct cpu_times *a, const struct cpu_times *b,
                      struct cpu_pct *out)
{
    long hz = sysconf(_SC_CLK_TCK);
    double total = (double)(b->t_ns - a->t_ns) / 1e9 * (double)b->ncpu *
                   (double)(hz > 0 ? hz : 100);

    out->busy = out->steal = out->bench = out->server = -1;
    if (total <= 0)
        return;
    if (a->self >= 0 && b->self >= 0)
        out->bench = pct_of((double)(b->self - a->self), total);
    if (a->server >= 0 && b->server >= 0)
        out->server = pct_of((double)(b->server - a->server), total);
    if (!a->ok || !b->ok || !b->ncpu)
        return;
    out->steal = pct_of((double)(b->steal - a->steal), total);
    out->busy = pct_of(total - (double)(b->idle - a->idle) -
                       (double)(b->steal - a->steal), total);
}

struct bench {
    struct opts o;
    struct event_base *base;
    struct chat *chats;
    struct conn *conns;
    int next_conn, pending, open, done_handshakes;
    uint64_t t0, t_hs_first, t_hs_last, t_send_start, t_send_end;
    struct cpu_times cpu0, cpu1; /* the machine's, over the measured part */
    uint64_t sent, delivered, expected, own_echoes, errors;
    uint64_t events, reads;  /* --receipts: events received, reads sent */
    uint64_t unexpected_closes, handshake_failures, protocol_errors;
    double credit;
    uint64_t last_tick, ticks; /* ticks: fixed-rate ticks that sent */
    int sending, draining;
    struct hist lat, hs, wdelay;
    struct event *tick, *stop;
    int next_sender;
    char *pad;
    struct tls_seen tls;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "carechat-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* WebSocket masks need not be secret for a benchmark; RAND_bytes per
 * frame cost a system call (getpid) per message.  xorshift64, seeded
 * once from RAND_bytes. */
static uint64_t mask_state;

static void mask_key(unsigned char mask[4])
{
    uint64_t x = mask_state;

    if (!x && RAND_bytes((unsigned char *)&x, sizeof x) != 1)
        die("RAND_bytes failed");
    x |= 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    mask_state = x;
    memcpy(mask, &x, 4);
}

/* ------------------------------------------------------------ tokens */

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
                     in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* An HS256 token for claims (a JSON object text). */
static void mint(const char *secret, const char *claims, char *out,
                 size_t size)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char mac[32];
    unsigned int maclen = sizeof mac;
    size_t n;

    if (size < 4 * (sizeof hdr + strlen(claims)) / 3 + 64)
        die("token too long");
    n = b64url((const unsigned char *)hdr, sizeof hdr - 1, out);
    out[n++] = '.';
    n += b64url((const unsigned char *)claims, strlen(claims), out + n);
    HMAC(EVP_sha256(), secret, (int)strlen(secret),
         (const unsigned char *)out, n, mac, &maclen);
    out[n++] = '.';
    b64url(mac, maclen, out + n);
}

static void uuid4(char out[37])
{
    unsigned char r[16];

    if (RAND_bytes(r, sizeof r) != 1)
        die("RAND_bytes failed");
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

/* -------------------------------------------------- blocking REST */

static int tcp_connect(const struct opts *o)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 10, 0 };

    sa.sin_port = htons((uint16_t)o->port);
    if (fd < 0 || inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        die("bad host %s (an IPv4 address)", o->host);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("cannot connect to %s:%d: %s", o->host, o->port,
            strerror(errno));
    return fd;
}

/* A TLS session on fd for host, verifying its certificate (an IP
 * address is checked against the certificate's IP names). */
static SSL *tls_client(int fd, const char *host)
{
    SSL *ssl = SSL_new(tls_ctx);
    struct in_addr ip;

    if (!ssl)
        die("SSL_new failed");
    if (inet_pton(AF_INET, host, &ip) == 1)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    else
        SSL_set1_host(ssl, host);
    if (fd >= 0)
        SSL_set_fd(ssl, fd);
    return ssl;
}

/* A TLS connection's WebSocket opened: note what it negotiated (the
 * first time), whether it was resumed, and with --resume keep its
 * session for the slot's next handshake. */
static void tls_note(struct tls_seen *t, SSL *ssl, SSL_SESSION **keep)
{
    X509 *cert;
    EVP_PKEY *k;
    const char *name;
    int g;

    if (SSL_session_reused(ssl))
        t->resumed++;
    if (keep) {
        SSL_SESSION *s = SSL_get1_session(ssl);

        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(*keep);
            *keep = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
    if (t->protocol[0])
        return;
    snprintf(t->protocol, sizeof t->protocol, "%s", SSL_get_version(ssl));
    g = SSL_get_negotiated_group(ssl);
    name = g ? SSL_group_to_name(ssl, g) : NULL;
    snprintf(t->group, sizeof t->group, "%s", name ? name : "?");
    cert = SSL_get0_peer_certificate(ssl);
    k = cert ? X509_get0_pubkey(cert) : NULL;
    if (!k) {
        snprintf(t->key, sizeof t->key, "?");
    } else {
        char curve[32] = "";
        size_t n = 0;

        if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC)
            EVP_PKEY_get_group_name(k, curve, sizeof curve, &n);
        snprintf(t->key, sizeof t->key, "%s%s%s %d bits",
                 EVP_PKEY_get0_type_name(k), curve[0] ? " " : "",
                 curve, EVP_PKEY_get_bits(k));
    }
}

/* write/read for the set-up requests, over TLS when ssl is set. */
static ssize_t rest_io(int fd, SSL *ssl, void *buf, size_t n, int wr)
{
    if (ssl)
        return wr ? SSL_write(ssl, buf, (int)n) : SSL_read(ssl, buf, (int)n);
    return wr ? write(fd, buf, n) : read(fd, buf, n);
}

/* POST body to path with token; the status, and the body in out. */
static int post(const struct opts *o, const char *path, const char *tok,
                const char *body, char *out, size_t out_size)
{
    char req[TOKEN_MAX + 1024], resp[8192];
    int fd = tcp_connect(o), n, status = 0;
    size_t got = 0;
    char *p;
    SSL *ssl = NULL;

    if (o->tls) {
        ssl = tls_client(fd, o->host);
        if (SSL_connect(ssl) != 1)
            die("TLS handshake with %s:%d failed (--cafile?)", o->host,
                o->port);
    }

    n = snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Authorization: Bearer %s\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s", path, o->host, o->port, tok,
                 strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req ||
        rest_io(fd, ssl, req, (size_t)n, 1) != n)
        die("request to %s failed", path);
    while (got < sizeof resp - 1) {
        ssize_t r = rest_io(fd, ssl, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    resp[got] = '\0';
    sscanf(resp, "HTTP/1.%*d %d", &status);
    p = strstr(resp, "\r\n\r\n");
    snprintf(out, out_size, "%s", p ? p + 4 : "");
    return status;
}

/* The value of "key": "..." in a JSON text (ids only: no escapes). */
static int json_str(const char *json, const char *key, char *out,
                    size_t size)
{
    char pat[64];
    const char *p, *e;

    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    p = strstr(json, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\":\"", key);
        if (!(p = strstr(json, pat)))
            return -1;
    }
    p += strlen(pat);
    e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= size)
        return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return 0;
}

static void setup_chats(struct bench *b)
{
    const struct opts *o = &b->o;
    char admin[TOKEN_MAX], claims[512], body[256], out[8192];
    long exp = (long)time(NULL) + 86400;
    FILE *tf = NULL;

    if (o->tokens_file && !(tf = fopen(o->tokens_file, "r")))
        die("cannot read %s", o->tokens_file);
    snprintf(claims, sizeof claims, "{\"user_id\":\"bench-admin\","
             "\"%s\":true,\"exp\":%ld}", o->admin_claim, exp);
    if (o->secret)
        mint(o->secret, claims, admin, sizeof admin);
    for (int i = 0; i < o->chats; i++) {
        struct chat *c = &b->chats[i];
        char pat[37], pro[37];
        int st;

        if (tf) {
            /* One line per chat: chat_id patient_token pro_token. */
            if (fscanf(tf, "%36s %2047s %2047s", c->id, c->tok[0],
                       c->tok[1]) != 3)
                die("%s: too few lines for %d chats", o->tokens_file,
                    o->chats);
            continue;
        }
        uuid4(pat);
        uuid4(pro);
        snprintf(body, sizeof body, "{\"kind\":\"patient\",\"id\":\"%s\"}",
                 pat);
        if ((st = post(o, "/chat/profiles/", admin, body, out,
                       sizeof out)) != 201)
            die("registering a profile: HTTP %d %s (is the secret right, "
                "and the admin claim \"%s\"?)", st, out, o->admin_claim);
        snprintf(body, sizeof body, "{\"kind\":\"professional\","
                 "\"id\":\"%s\"}", pro);
        if ((st = post(o, "/chat/profiles/", admin, body, out,
                       sizeof out)) != 201)
            die("registering a profile: HTTP %d %s", st, out);
        snprintf(claims, sizeof claims, "{\"user_id\":\"bench-p%d\","
                 "\"patient_id\":\"%s\",\"exp\":%ld}", i, pat, exp);
        mint(o->secret, claims, c->tok[0], sizeof c->tok[0]);
        snprintf(claims, sizeof claims, "{\"user_id\":\"bench-r%d\","
                 "\"professional_id\":\"%s\",\"exp\":%ld}", i, pro, exp);
        mint(o->secret, claims, c->tok[1], sizeof c->tok[1]);
        snprintf(body, sizeof body, "{\"professional\":\"%s\"}", pro);
        st = post(o, "/chat/chats/", c->tok[0], body, out, sizeof out);
        if ((st != 201 && st != 200) || json_str(out, "id", c->id,
                                                 sizeof c->id) < 0)
            die("creating a chat: HTTP %d %s", st, out);
    }
    if (tf)
        fclose(tf);
}

/* ------------------------------------------------------- WebSocket */

static void conn_start(struct bench *b);
static void maybe_send(struct bench *b, struct conn *c);
static void conn_flush(struct conn *c);

static void ws_send_text(struct conn *c, const char *text, size_t n)
{
    unsigned char hdr[14], mask[4];
    size_t h = 0;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char buf[4096];

    mask_key(mask);
    hdr[h++] = 0x81;
    if (n < 126) {
        hdr[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(n >> 8);
        hdr[h++] = (unsigned char)n;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(hdr + h, mask, 4);
    h += 4;
    evbuffer_add(out, hdr, h);
    for (size_t off = 0; off < n; off += sizeof buf) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = (char)(text[off + i] ^ mask[(off + i) & 3]);
        evbuffer_add(out, buf, k);
    }
}

static void ws_send_control(struct conn *c, int opcode, const void *p,
                            size_t n)
{
    unsigned char f[2 + 4 + 125];
    unsigned char mask[4];

    if (n > 125)
        n = 125;
    mask_key(mask);
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | n);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
    evbuffer_add(bufferevent_get_output(c->bev), f, 6 + n);
}

static void conn_closed(struct conn *c, int expected)
{
    struct bench *b = c->b;

    if (c->state == C_CLOSED)
        return;
    if (c->state == C_OPEN)
        b->open--;
    else
        b->pending--;
    if (!expected) {
        if (c->state == C_OPEN)
            b->unexpected_closes++;
        else
            b->handshake_failures++;
    }
    c->state = C_CLOSED;
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (b->o.mode != MODE_MESSAGES)
        conn_start(b);
}

/* --receipts: a message of another connection was shown; mark it read,
 * as a page does ({"read": "<its id>"}). */
static void mark_read(struct conn *c, const char *p, size_t n)
{
    static const char head[] = "{\"message\": {\"id\": \"";
    char msg[64];
    int len;

    if (n < sizeof head - 1 + 36 || memcmp(p, head, sizeof head - 1) != 0)
        return;
    len = snprintf(msg, sizeof msg, "{\"read\": \"%.36s\"}",
                   p + sizeof head - 1);
    ws_send_text(c, msg, (size_t)len);
    c->b->reads++;
}

/* A text message from the server. */
static void on_text(struct conn *c, const char *p, size_t n)
{
    struct bench *b = c->b;
    static const char key[] = "\"content\": \"bench ";
    const char *q = memmem(p, n, key, sizeof key - 1);
    unsigned long long t;
    int from;

    if (!q) {
        if (b->o.receipts && n > 8 && (memcmp(p, "{\"read\": ", 9) == 0 ||
                                       memcmp(p, "{\"delivered", 11) == 0))
            b->events++;
        else if (memmem(p, n, "\"error\"", 7))
            b->errors++;
        else
            b->protocol_errors++;
        return;
    }
    q += sizeof key - 1;
    if (sscanf(q, "%llu %d", &t, &from) != 2) {
        b->protocol_errors++;
        return;
    }
    b->delivered++;
    hist_add(&b->lat, now_ns() - t);
    if (b->o.receipts && from != c->idx)
        mark_read(c, p, n);
    if (from == c->idx) {
        b->own_echoes++;
        c->inflight--;
        maybe_send(b, c);
    }
}

/* Parse the frames in the input buffer. */
static void read_frames(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    for (;;) {
        size_t avail = evbuffer_get_length(in), hl = 2;
        unsigned char h[10];
        uint64_t len;
        unsigned char *payload;
        int op;

        if (avail < 2)
            return;
        evbuffer_copyout(in, h, avail < 10 ? avail : 10);
        len = h[1] & 0x7f;
        if (len == 126) {
            hl = 4;
            if (avail < hl)
                return;
            len = (uint64_t)h[2] << 8 | h[3];
        } else if (len == 127) {
            hl = 10;
            if (avail < hl)
                return;
            len = 0;
            for (int i = 2; i < 10; i++)
                len = len << 8 | h[i];
        }
        if (avail < hl + len)
            return;
        op = h[0] & 0x0f;
        evbuffer_drain(in, hl);
        payload = evbuffer_pullup(in, (ev_ssize_t)len);
        if (op == 0x1)
            on_text(c, (const char *)payload, (size_t)len);
        else if (op == 0x9) {
            ws_send_control(c, 0xA, payload, (size_t)len);
            conn_flush(c);
            if (c->state != C_OPEN)
                return;
        }
        else if (op == 0x8) {
            evbuffer_drain(in, len);
            conn_closed(c, c->b->draining || !c->b->sending);
            return;
        }
        evbuffer_drain(in, len);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct bench *b = c->b;

    if (c->state == C_HANDSHAKE) {
        struct evbuffer *in = bufferevent_get_input(bev);
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        char line[16];

        if (end.pos < 0)
            return;
        evbuffer_copyout(in, line, sizeof line);
        evbuffer_drain(in, (size_t)end.pos + 4);
        if (memcmp(line, "HTTP/1.1 101", 12) != 0) {
            conn_closed(c, 0);
            return;
        }
        c->state = C_OPEN;
        /* From now on conn_flush writes, in the turn that queues. */
        if (!b->o.tls)
            bufferevent_disable(bev, EV_WRITE);
        b->pending--;
        b->open++;
        if (b->o.tls)
            tls_note(&b->tls, bufferevent_openssl_get_ssl(bev),
                     b->o.resume ? &c->sess : NULL);
        b->done_handshakes++;
        b->t_hs_last = now_ns();
        hist_add(&b->hs, b->t_hs_last - c->t_start);
        if (b->o.mode == MODE_HANDSHAKES) {
            /* Measure the next handshake: drop this one (a FIN, as a
             * client that goes away; the server logs a 1006). */
            c->state = C_CLOSED;
            b->open--;
            /* Without a close_notify OpenSSL would mark the session
             * this slot keeps (--resume) as not resumable. */
            if (b->o.tls)
                SSL_set_shutdown(bufferevent_openssl_get_ssl(bev),
                                 SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            bufferevent_free(c->bev);
            c->bev = NULL;
            conn_start(b);
            return;
        }
        conn_start(b);
    }
    if (c->state == C_OPEN)
        read_frames(c);
    if (c->state == C_OPEN)
        conn_flush(c);
}

/* The output was written to the socket: the time since the first stamp
 * it held goes to the stamp-to-write histogram (CCB_DEBUG=1 prints it). */
static void output_written(struct conn *c)
{
    if (c->t_unsent) {
        hist_add(&c->b->wdelay, now_ns() - c->t_unsent);
        c->t_unsent = 0;
    }
}

/* Write an open connection's output now, in the call that queued it.
 * Left to the bufferevent, a write waits for the next loop turn behind
 * an epoll_ctl to watch the socket and one to stop, and every message
 * of a burst is stamped before the first is written: that is what
 * inflated the latency the bench reported.  Only what the socket does
 * not take is left to the bufferevent (EV_WRITE on until it drains). */
static void conn_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int rc = 0;

    if (c->b->o.tls || !evbuffer_get_length(out))
        return;      /* an SSL bufferevent writes as soon as it is given */
    /* A socket bufferevent keeps its output's start frozen but for its
     * own writes; thaw it for ours, as bufferevent_sock.c does. */
    evbuffer_unfreeze(out, 1);
    errno = 0;
    if (evbuffer_write(out, bufferevent_getfd(c->bev)) < 0 &&
        errno != EAGAIN && errno != EINTR)
        rc = -1;
    evbuffer_freeze(out, 1);
    if (rc < 0) {
        conn_closed(c, 0);
        return;
    }
    if (evbuffer_get_length(out))
        bufferevent_enable(c->bev, EV_WRITE);
    else
        output_written(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    output_written(c);
    if (c->state == C_OPEN && !c->b->o.tls)
        bufferevent_disable(bev, EV_WRITE);
}

/* The node c connects to: a chat's patient to node chat % N, its
 * professional to the next one, so with two nodes or more every chat's
 * parties are on different nodes. */
static int conn_node(const struct conn *c)
{
    int n = c->b->o.n_nodes;

    return (c->chat + c->side) % n;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & BEV_EVENT_CONNECTED) {
        char req[TOKEN_MAX + 512], key[25];
        unsigned char raw[16];
        struct chat *ch = &c->b->chats[c->chat];
        const struct node *nd = &c->b->o.nodes[conn_node(c)];
        int n;

        RAND_bytes(raw, sizeof raw);
        EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
        n = snprintf(req, sizeof req, "GET /ws/chat/%s/?token=%s%s "
                     "HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", ch->id,
                     ch->tok[c->side], c->b->o.receipts ? "&receipts=1" : "",
                     nd->host, nd->port, key);
        bufferevent_write(bev, req, (size_t)n);
        c->state = C_HANDSHAKE;
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_closed(c, 0);
}

static int bench_done_opening(struct bench *b)
{
    return b->next_conn >= b->o.conns;
}

/* Open connections while fewer than max_pending handshakes run. */
static void conn_start(struct bench *b)
{
    const struct opts *o = &b->o;

    int tries = 0;

    while (b->pending < o->max_pending && tries++ < o->conns &&
           (o->mode == MODE_HANDSHAKES ? b->sending
                                       : !bench_done_opening(b))) {
        int i = o->mode == MODE_HANDSHAKES ? b->next_conn % o->conns
                                           : b->next_conn;
        struct conn *c = &b->conns[i];
        struct sockaddr_in sa = { .sin_family = AF_INET };
        evutil_socket_t fd;

        b->next_conn++;
        if (c->bev)
            continue; /* still open (handshake mode wraps around) */
        tries = 0;
        c->b = b;
        c->idx = i;
        c->chat = i % o->chats;
        c->side = (i / o->chats) % 2;
        c->state = C_CONNECTING;
        c->inflight = 0;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            b->handshake_failures++;
            return;
        }
        if (o->n_sources) {
            struct sockaddr_in src = { .sin_family = AF_INET };
            src.sin_addr = o->sources[i % o->n_sources];
            if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
                die("bind %s: %s", inet_ntoa(src.sin_addr),
                    strerror(errno));
        }
        {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (o->tls) {
            SSL *ssl = tls_client(-1, o->nodes[conn_node(c)].host);

            if (c->sess)
                SSL_set_session(ssl, c->sess);
            c->bev = bufferevent_openssl_socket_new(b->base, fd, ssl,
                BUFFEREVENT_SSL_CONNECTING,
                BEV_OPT_CLOSE_ON_FREE);
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        } else {
            c->bev = bufferevent_socket_new(b->base, fd,
                                            BEV_OPT_CLOSE_ON_FREE);
        }
        bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        sa = o->nodes[conn_node(c)].sa;
        c->t_start = now_ns();
        if (!b->t_hs_first)
            b->t_hs_first = c->t_start;
        b->pending++;
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sa,
                                       sizeof sa) < 0) {
            conn_closed(c, 0);
            return;
        }
    }
}

/* ------------------------------------------------------------ sending */

/* Queue one message on c, stamped now; the caller writes it with
 * conn_flush straight after (the stamp is the send time). */
static void send_one(struct bench *b, struct conn *c)
{
    char msg[256 + 65536];
    int n;
    uint64_t t = now_ns();

    if (!c->t_unsent)
        c->t_unsent = t;
    n = snprintf(msg, sizeof msg, "{\"content\": \"bench %" PRIu64
                 " %d %s\"}", t, c->idx, b->pad);
    ws_send_text(c, msg, (size_t)n);
    c->inflight++;
    b->sent++;
    b->expected += (uint64_t)b->chats[c->chat].members;
}

/* As fast as possible: keep each sender's window full.  The caller
 * writes (conn_flush): on_read once for all the echoes of one read. */
static void maybe_send(struct bench *b, struct conn *c)
{
    if (!b->sending || b->o.rate > 0 || !c->sender)
        return;
    if (c->state != C_OPEN || c->inflight >= b->o.window)
        return;
    while (c->inflight < b->o.window)
        send_one(b, c);
}

/* Fixed rate: on each tick (1/rate apart, at least TICK_MIN_NS, on a
 * precise timer), the messages due, round robin, each written as it is
 * stamped. */
static void on_tick(evutil_socket_t fd, short w, void *arg)
{
    struct bench *b = arg;

    uint64_t now = now_ns();

    if (!b->sending)
        return;
    /* Credit by elapsed time: timer ticks may come late under load. */
    if (b->last_tick)
        b->credit += b->o.rate * (double)(now - b->last_tick) / 1e9;
    b->last_tick = now;
    int tries_sent = 0;
    for (int tries = 0; b->credit >= 1.0 && tries < b->o.conns; tries++) {
        struct conn *c = &b->conns[b->next_sender++ % b->o.conns];
        if (c->state != C_OPEN || !c->sender)
            continue;
        if (!tries_sent++)
            b->ticks++;
        send_one(b, c);
        conn_flush(c);
        b->credit -= 1.0;
        tries = 0;
    }
    if (b->credit > b->o.rate)
        b->credit = b->o.rate; /* the server lags: do not pile up */
}

static void on_stop(evutil_socket_t fd, short w, void *arg)
{
    struct bench *b = arg;

    if (b->sending) {
        b->sending = 0;
        b->t_send_end = now_ns();
        read_cpu(&b->cpu1, &b->o);
        if (b->o.mode != MODE_MESSAGES) {
            event_base_loopbreak(b->base);
            return;
        }
        b->draining = 1;
        /* Let deliveries in flight arrive. */
        struct timeval tv = { DRAIN_S, 0 };
        evtimer_add(b->stop, &tv);
        return;
    }
    event_base_loopbreak(b->base);
}

/* Once every connection is open (or failed), start the clock. */
static void on_check_open(evutil_socket_t fd, short w, void *arg)
{
    struct bench *b = arg;
    struct timeval tv;

    if (b->o.mode == MODE_HANDSHAKES) {
        b->sending = 1;
        conn_start(b);
    } else if (b->pending > 0 || !bench_done_opening(b)) {
        if ((now_ns() - b->t0) / 1000000000u > 120)
            die("connections did not open within 120 s (%d open, %d "
                "pending)", b->open, b->pending);
        return;
    } else if (!b->t_send_start) {
        for (int i = 0; i < b->o.conns; i++)
            if (b->conns[i].state == C_OPEN)
                b->chats[b->conns[i].chat].members++;
        b->t_send_start = now_ns();
        if (b->o.mode == MODE_MESSAGES) {
            int senders = b->o.senders ? b->o.senders : b->o.conns;
            for (int i = 0; i < b->o.conns && i < senders; i++)
                b->conns[i].sender = 1;
            b->sending = 1;
            for (int i = 0; i < b->o.conns; i++) {
                maybe_send(b, &b->conns[i]);
                if (b->conns[i].state == C_OPEN)
                    conn_flush(&b->conns[i]);
            }
        }
    } else {
        return;
    }
    tv.tv_sec = (long)b->o.duration;
    tv.tv_usec = (long)((b->o.duration - (double)tv.tv_sec) * 1e6);
    b->t_send_start = now_ns();
    read_cpu(&b->cpu0, &b->o);
    evtimer_add(b->stop, &tv);
    event_del(b->tick);
    if (b->o.mode == MODE_MESSAGES && b->o.rate > 0) {
        uint64_t ns = (uint64_t)(1e9 / b->o.rate);
        struct timeval ms;

        if (ns < TICK_MIN_NS)
            ns = TICK_MIN_NS;
        ms.tv_sec = (long)(ns / 1000000000u);
        ms.tv_usec = (long)(ns % 1000000000u / 1000);
        event_free(b->tick);
        b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
        event_add(b->tick, &ms);
    }
}

/* ------------------------------------------------------------ report */

static long long rss_kib(long pid)
{
    char path[64], line[256];
    long long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void report(struct bench *b, long rss0, long rss1)
{
    const struct opts *o = &b->o;
    double secs = (double)(b->t_send_end - b->t_send_start) / 1e9;
    double hs_secs = (double)(b->t_hs_last - b->t_hs_first) / 1e9;
    double hs_rate = hs_secs > 0 ? b->done_handshakes / hs_secs : 0;
    uint64_t lost = b->expected > b->delivered ? b->expected - b->delivered
                                               : 0;
    const char *mode = o->mode == MODE_IDLE ? "idle"
                       : o->mode == MODE_HANDSHAKES ? "handshakes"
                                                    : "messages";
    double rss_per = rss1 > 0 && b->open ? (double)(rss1 - (rss0 > 0 ? rss0
                                                                     : 0)) *
                                               1024.0 / b->open
                                         : 0;
    struct cpu_pct cpu;

    cpu_share(&b->cpu0, &b->cpu1, &cpu);
    if (secs <= 0)
        secs = 1e-9;
    if (o->json) {
        printf("{\"mode\": \"%s\", \"connections\": %d, \"open\": %d, "
               "\"chats\": %d, \"duration_s\": %.3f, \"rate\": %.0f, "
               "\"sent\": %" PRIu64 ", \"expected_deliveries\": %" PRIu64
               ", \"deliveries\": %" PRIu64 ", \"lost\": %" PRIu64 ", "
               "\"errors\": %" PRIu64 ", \"unexpected_closes\": %" PRIu64
               ", \"handshake_failures\": %" PRIu64 ", "
               "\"protocol_errors\": %" PRIu64 ", "
               "\"messages_per_s\": %.1f, \"deliveries_per_s\": %.1f, "
               "\"latency_us\": {\"p50\": %.1f, \"p99\": %.1f, "
               "\"p999\": %.1f, \"max\": %.1f}, \"handshakes\": %d, "
               "\"handshakes_per_s\": %.1f, \"handshake_p99_us\": %.1f, "
               "\"server_rss_kib\": %ld, \"server_rss_per_conn_bytes\": "
               "%.0f, \"cpu_busy_pct\": %.1f, \"cpu_steal_pct\": %.1f, "
               "\"cpu_server_pct\": %.1f, \"cpu_bench_pct\": %.1f, "
               "\"cpus\": %d, \"tls_protocol\": \"%s\", \"tls_group\": "
               "\"%s\", \"tls_certificate\": \"%s\", \"tls_resumed\": %"
               PRIu64 ", \"reads_sent\": %" PRIu64 ", \"events\": %" PRIu64
               "}\n",
               mode, o->conns, b->open, o->chats, secs, o->rate,
               b->sent, b->expected, b->delivered, lost, b->errors,
               b->unexpected_closes, b->handshake_failures,
               b->protocol_errors, (double)b->sent / secs,
               (double)b->delivered / secs, hist_pct(&b->lat, 50) / 1e3,
               hist_pct(&b->lat, 99) / 1e3, hist_pct(&b->lat, 99.9) / 1e3,
               (double)b->lat.max / 1e3, b->done_handshakes, hs_rate,
               hist_pct(&b->hs, 99) / 1e3, rss1, rss_per, cpu.busy, cpu.steal,
               cpu.server, cpu.bench, b->cpu1.ncpu, b->tls.protocol,
               b->tls.group, b->tls.key, b->tls.resumed, b->reads,
               b->events);
        return;
    }
    printf("carechat-bench: %s, %d connections over %d chats, %.1f s%s\n",
           mode, o->conns, o->chats, secs,
           o->rate > 0 ? "" : ", as fast as possible");
    if (o->mode == MODE_MESSAGES) {
        printf("  messages sent        %12" PRIu64 "  (%.0f/s)\n", b->sent,
               (double)b->sent / secs);
        printf("  deliveries           %12" PRIu64 "  (%.0f/s), expected "
               "%" PRIu64 ", lost %" PRIu64 "\n", b->delivered,
               (double)b->delivered / secs, b->expected, lost);
        printf("  latency (us)         p50 %.0f  p99 %.0f  p99.9 %.0f  "
               "max %.0f\n", hist_pct(&b->lat, 50) / 1e3,
               hist_pct(&b->lat, 99) / 1e3, hist_pct(&b->lat, 99.9) / 1e3,
               (double)b->lat.max / 1e3);
    }
    printf("  handshakes           %12d  (%.0f/s, p99 %.0f us)\n",
           b->done_handshakes, hs_rate, hist_pct(&b->hs, 99) / 1e3);
    printf("  errors               %12" PRIu64 "  unexpected closes %"
           PRIu64 ", failed handshakes %" PRIu64 ", protocol %" PRIu64 "\n",
           b->errors, b->unexpected_closes, b->handshake_failures,
           b->protocol_errors);
    if (o->receipts)
        printf("  receipts             %12" PRIu64 " reads sent, %" PRIu64
               " events received\n", b->reads, b->events);
    if (b->tls.protocol[0])
        printf("  TLS                  %s, %s, certificate %s; %" PRIu64
               " of %d resumed\n", b->tls.protocol, b->tls.group, b->tls.key,
               b->tls.resumed, b->done_handshakes);
    if (rss1 > 0)
        printf("  server RSS           %12ld KiB  (%.0f bytes per open "
               "connection)\n", rss1, rss_per);
    if (cpu.busy >= 0)
        printf("  machine CPU          %11.1f%% busy, %.1f%% stolen by the "
               "hypervisor (%d CPUs)\n", cpu.busy, cpu.steal, b->cpu1.ncpu);
    if (cpu.server >= 0)
        printf("  of it, the server%s %11.1f%%  (--pid, all threads)\n",
               o->n_pids > 1 ? "s" : " ", cpu.server);
    if (cpu.bench >= 0)
        printf("  of it, the bench     %11.1f%%\n", cpu.bench);
}

/* ------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: carechat-bench [options]\n"
        "  -H, --host ADDR[:PORT] server IPv4 address (127.0.0.1); "
        "repeat for\n"
        "                         nodes: a chat's patient on one, its "
        "professional\n"
        "                         on the next; set-up on the first\n"
        "  -p, --port N           server port (8000)\n"
        "  -s, --secret S         HS256 secret to mint tokens\n"
        "      --secret-file F    the secret, from a file\n"
        "      --tokens-file F    lines \"chat_id patient_tok pro_tok\" "
        "instead\n"
        "      --admin-claim C    admin claim name (carechat_admin)\n"
        "  -c, --connections N    WebSockets (100)\n"
        "  -m, --chats M          chats they spread over (50)\n"
        "  -d, --duration S       seconds of sending (10, at most 3600)\n"
        "  -r, --rate R           messages/s in all (0: as fast as "
        "possible)\n"
        "  -w, --window W         own messages in flight per sender (8)\n"
        "      --senders K        only the first K connections send\n"
        "      --size B           extra content bytes per message (0)\n"
        "      --handshakes       measure handshakes/s instead\n"
        "      --idle             open the connections, hold, measure "
        "RSS\n"
        "      --pending P        handshakes in flight (256)\n"
        "      --source A[-B]     bind to 127.0.0.A..B (last octet range)\n"
        "      --tls              wss and https (the nodes' TLS ports)\n"
        "      --cafile F         CA certificates to verify the server "
        "(PEM)\n"
        "      --resume           TLS: each connection offers its last "
        "session\n"
        "                         (a reconnecting client; --handshakes)\n"
        "      --receipts         connections ask for events (?receipts=1)\n"
        "                         and mark every message of the other\n"
        "                         party read as it arrives\n"
        "      --pid PID          the server's pid, for its RSS and CPU "
        "(repeat: one\n"
        "                         per node, summed)\n"
        "      --json             one JSON object instead of the table\n");
}

static void parse_sources(struct opts *o, const char *v)
{
    struct in_addr a;
    char first[32];
    const char *dash = strchr(v, '-');
    long last;

    snprintf(first, sizeof first, "%.*s",
             dash ? (int)(dash - v) : (int)strlen(v), v);
    if (inet_pton(AF_INET, first, &a) != 1)
        die("--source: bad address %s", first);
    last = dash ? strtol(dash + 1, NULL, 10) : (long)(ntohl(a.s_addr) & 255);
    for (long i = ntohl(a.s_addr) & 255; i <= last && o->n_sources <
         MAX_SOURCES; i++) {
        o->sources[o->n_sources].s_addr =
            htonl((ntohl(a.s_addr) & ~255u) | (uint32_t)i);
        o->n_sources++;
    }
}

static double num(const char *v, double min, double max, const char *name);

/* Split each -H ADDR[:PORT] (a bare ADDR takes -p), check it, fill in
 * its address; none given: 127.0.0.1 and -p.  Node 0 is o->host/port. */
static void resolve_nodes(struct opts *o)
{
    if (!o->n_nodes)
        snprintf(o->nodes[o->n_nodes++].host, sizeof o->nodes[0].host,
                 "127.0.0.1");
    for (int i = 0; i < o->n_nodes; i++) {
        struct node *nd = &o->nodes[i];
        char *colon = strchr(nd->host, ':');

        nd->port = o->port;
        if (colon) {
            *colon = '\0';
            nd->port = (int)num(colon + 1, 1, 65535, "host");
        }
        nd->sa = (struct sockaddr_in){ .sin_family = AF_INET,
                                       .sin_port = htons((uint16_t)nd->port) };
        if (inet_pton(AF_INET, nd->host, &nd->sa.sin_addr) != 1)
            die("--host: bad address %s (an IPv4 address)", nd->host);
    }
    o->host = o->nodes[0].host;
    o->port = o->nodes[0].port;
}

/* A number option in [min, max], or die naming the option. */
static double num(const char *v, double min, double max, const char *name)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || d < min || d > max)
        die("--%s: expected a number from %g to %g", name, min, max);
    return d;
}

static char *read_secret(const char *path)
{
    static char buf[1024];
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        die("cannot read %s", path);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "host", 1, 0, 'H' }, { "port", 1, 0, 'p' },
        { "secret", 1, 0, 's' }, { "secret-file", 1, 0, 'S' },
        { "tokens-file", 1, 0, 'T' }, { "admin-claim", 1, 0, 'A' },
        { "connections", 1, 0, 'c' }, { "chats", 1, 0, 'm' },
        { "duration", 1, 0, 'd' }, { "rate", 1, 0, 'r' },
        { "window", 1, 0, 'w' }, { "senders", 1, 0, 'K' },
        { "size", 1, 0, 'B' }, { "handshakes", 0, 0, 'h' },
        { "idle", 0, 0, 'i' }, { "pending", 1, 0, 'P' },
        { "source", 1, 0, 'o' }, { "pid", 1, 0, 'x' },
        { "json", 0, 0, 'j' }, { "tls", 0, 0, 't' },
        { "cafile", 1, 0, 'C' }, { "resume", 0, 0, 'R' },
        { "receipts", 0, 0, 'E' },
        { "help", 0, 0, '?' }, { 0, 0, 0, 0 },
    };
    struct bench *b = calloc(1, sizeof *b);
    struct opts *o = &b->o;
    struct rlimit rl;
    struct timeval tv = { 0, 20000 };
    long rss0 = -1, rss1 = -1;
    int ch, rc;

    if (!b)
        die("out of memory");
    *o = (struct opts){ .host = "127.0.0.1", .port = 8000,
                        .admin_claim = "carechat_admin", .conns = 100,
                        .chats = 50, .duration = 10, .window = 8,
                        .max_pending = 256 };
    while ((ch = getopt_long(argc, argv, "H:p:s:c:m:d:r:w:", lo, NULL)) !=
           -1) {
        switch (ch) {
        case 'H':
            if (o->n_nodes == MAX_NODES)
                die("--host: at most %d nodes", MAX_NODES);
            snprintf(o->nodes[o->n_nodes++].host, sizeof o->nodes[0].host,
                     "%s", optarg);
            break;
        case 'p': o->port = (int)num(optarg, 1, 65535, "port"); break;
        case 's': o->secret = optarg; break;
        case 'S': o->secret = read_secret(optarg); break;
        case 'T': o->tokens_file = optarg; break;
        case 'A': o->admin_claim = optarg; break;
        case 'c': o->conns = (int)num(optarg, 1, 1e6, "connections"); break;
        case 'm': o->chats = (int)num(optarg, 1, 1e6, "chats"); break;
        case 'd': o->duration = num(optarg, 0.01, 3600, "duration"); break;
        case 'r': o->rate = num(optarg, 0, 1e8, "rate"); break;
        case 'w': o->window = (int)num(optarg, 1, 1e6, "window"); break;
        case 'K': o->senders = (int)num(optarg, 1, 1e6, "senders"); break;
        case 'B': o->content_size = (size_t)num(optarg, 0, 60000, "size");
                  break;
        case 'h': o->mode = MODE_HANDSHAKES; break;
        case 'i': o->mode = MODE_IDLE; break;
        case 'P': o->max_pending = (int)num(optarg, 1, 1e5, "pending"); break;
        case 'o': parse_sources(o, optarg); break;
        case 'x':
            if (o->n_pids == MAX_NODES)
                die("at most %d --pid", MAX_NODES);
            o->pids[o->n_pids++] = (long)num(optarg, 1, 1e9, "pid");
            break;
        case 'j': o->json = 1; break;
        case 't': o->tls = 1; break;
        case 'C': o->cafile = optarg; break;
        case 'R': o->resume = 1; break;
        case 'E': o->receipts = 1; break;
        default: usage(ch == '?' && optopt == 0 ? stdout : stderr);
                 return ch == '?' && optopt == 0 ? 0 : 2;
        }
    }
    if (o->port < 1 || o->port > 65535 || o->conns < 1 ||
        o->conns > 1000000 || o->chats < 1 || o->chats > o->conns ||
        o->duration <= 0 || o->duration > 3600 || o->rate < 0 ||
        o->window < 1 || o->max_pending < 1 || o->content_size > 60000)
        die("bad option value (see --help)");
    resolve_nodes(o);
    if (!o->secret && !o->tokens_file)
        die("give --secret, --secret-file or --tokens-file");
    signal(SIGPIPE, SIG_IGN);
    if (o->cafile && !o->tls)
        die("--cafile needs --tls");
    if (o->resume && !o->tls)
        die("--resume needs --tls");
    if (o->tls) {
        if (!(tls_ctx = SSL_CTX_new(TLS_client_method())))
            die("SSL_CTX_new failed");
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        if (o->cafile ? SSL_CTX_load_verify_locations(tls_ctx, o->cafile,
                                                      NULL) != 1
                      : SSL_CTX_set_default_verify_paths(tls_ctx) != 1)
            die("cannot load CA certificates%s%s", o->cafile ? " from " : "",
                o->cafile ? o->cafile : "");
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)o->conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    b->pad = malloc(o->content_size + 1);
    memset(b->pad, 'x', o->content_size);
    b->pad[o->content_size] = '\0';
    b->chats = calloc((size_t)o->chats, sizeof *b->chats);
    b->conns = calloc((size_t)o->conns, sizeof *b->conns);
    if (!b->chats || !b->conns || !b->pad)
        die("out of memory");
    setup_chats(b);
    rss0 = (long)servers_sum(o, rss_kib);
    /* Coalesce the bench's own interest changes (a connection's first
     * turns enable and disable reading and writing several times) into
     * one epoll_ctl per fd and loop turn: the bench shares the cores
     * with the server, so its system calls are the server's loss. */
    {
        struct event_config *cfg = event_config_new();

        if (!cfg)
            die("event_config_new failed");
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        /* Timers to the microsecond (timerfd), not epoll_wait's
         * milliseconds rounded up: the fixed rate paces by them. */
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        b->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    b->stop = evtimer_new(b->base, on_stop, b);
    b->tick = event_new(b->base, -1, EV_PERSIST, on_check_open, b);
    event_add(b->tick, &tv);
    b->t0 = now_ns();
    if (o->mode != MODE_HANDSHAKES)
        conn_start(b);
    event_base_dispatch(b->base);
    if (!b->t_send_end) {
        b->t_send_end = now_ns();
        read_cpu(&b->cpu1, &b->o);
    }
    rss1 = (long)servers_sum(o, rss_kib);
    /* CCB_DEBUG=1: how long a message waits in the bench between its
     * stamp and the end of the write that sends it (the first message
     * of each write). */
    if (getenv("CCB_DEBUG"))
        fprintf(stderr, "carechat-bench: stamp to written: p50 %.1f us, "
                "p99 %.1f us, max %.1f us\n", hist_pct(&b->wdelay, 50) / 1e3,
                hist_pct(&b->wdelay, 99) / 1e3, (double)b->wdelay.max / 1e3);
    if (getenv("CCB_DEBUG") && b->ticks)
        fprintf(stderr, "carechat-bench: %" PRIu64 " ticks sent, %.1f "
                "messages each\n", b->ticks, (double)b->sent / b->ticks);
    report(b, rss0, rss1);
    fflush(stdout);
    rc = o->mode == MODE_MESSAGES &&
         (b->expected != b->delivered || b->unexpected_closes) ? 1 : 0;
    for (int i = 0; i < o->conns; i++) {
        if (b->conns[i].bev)
            bufferevent_free(b->conns[i].bev);
        SSL_SESSION_free(b->conns[i].sess);
    }
    event_free(b->tick);
    event_free(b->stop);
    /* Callbacks still queued (a deferred one holds its bufferevent: a TLS
     * connection of handshake mode leaked, with its SSL, at times) run,
     * and with them the frees, before the base goes. */
    event_base_loop(b->base, EVLOOP_NONBLOCK);
    event_base_free(b->base);
    SSL_CTX_free(tls_ctx);
    free(b->conns);
    free(b->chats);
    free(b->pad);
    free(b);
    return rc;
}
