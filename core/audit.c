/*
 * audit.c - the audit trail (see audit.h): [audit] settings, the queue of
 * formatted lines, the writer thread "cc-audit".
 *
 * Durability: the writer takes the whole queue as one batch, writes it
 * with write(2) (O_APPEND, so a rotated or shared file never interleaves
 * inside a line) and fdatasync(2)s at most every sync_interval (default
 * 100 ms; 0: after every batch).  An event is therefore on disk at most
 * about sync_interval after it was queued, unless the machine loses
 * power in that window.  A batch the file refuses is kept (with how much
 * of it was written) and tried again every RETRY_MS, so a full disk
 * delays events but does not drop them; only a full queue (queue_size
 * bytes) or an unwritable file at shutdown drops them, counted and
 * logged.
 */
#include "audit.h"
#include "config.h"
#include "host.h"
#include "log.h"
#include "msg.h"
#include "textsafe.h"
#include "timefmt.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS 200           /* a refused batch is tried again */
#define FILE_MODE 0640         /* group: the log readers (adm) */

/* The [audit] keys. */
struct settings {
    int on;                    /* an [audit] section was given */
    char *path;                /* file = ; NULL: none */
    int use_syslog;
    int facility;              /* LOG_AUTHPRIV unless syslog_facility */
    int required;
    uint64_t queue_max;        /* bytes of lines waiting, at most */
    uint64_t sync_ms;
};

static struct {
    int on;                    /* the settings, read once at start */
    char *path;
    int use_syslog, facility, required;
    uint64_t queue_max, sync_ms;
    int fd;                    /* writer thread only, once started */
    int started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* CLOCK_MONOTONIC */
    struct cc_sbuf q;          /* under mu: lines not yet taken */
    uint64_t q_events;         /* under mu: lines in q */
    int stopping, reopen;      /* under mu */
} A = { .fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

static atomic_uint_least64_t n_written, n_lost, n_errors, n_queued;
static atomic_uint_least64_t n_lost_episode; /* lost since last logged */
static atomic_int failing;     /* write errors since the last success */
static atomic_int overflowed;  /* lines lost since the writer caught up */

/* The writer's own state. */
struct writer {
    struct cc_sbuf batch;      /* lines being written */
    size_t off;                /* bytes of batch written already */
    uint64_t n_events;         /* lines in batch */
    int dirty;                 /* written, not yet fdatasync'ed */
    uint64_t last_sync_ms;
    uint64_t retry_at_ms;      /* with batch refused: next attempt */
    uint64_t errors;           /* failed attempts in this episode */
    uint64_t failing_since_ms;
};

static uint64_t now_ms(void)
{
    return cc_time_mono_ns() / 1000000;
}

/* ------------------------------------------------------------ format */

/* ,"key": "s" when s is set; bytes that are not UTF-8 become '?'. */
/* A string field, escaped as textsafe.h says for JSON: control and
 * invisible characters as \uXXXX, bytes that are not UTF-8 as U+FFFD,
 * JWT-shaped runs as [jwt]. */
static void field_str(struct cc_sbuf *b, const char *key, const char *s)
{
    char v[1024];

    if (!s || !s[0])
        return;
    cc_safe_text(v, sizeof v, s, strlen(s), CC_SAFE_JSON);
    cc_sbuf_printf(b, ", \"%s\": \"%s\"", key, v);
}

/* ok / denied / error from an HTTP status or a WebSocket close code. */
static const char *result_of(int status)
{
    switch (status) {
    case 0: case 1000: case 1001: case 1005:
        return "ok";
    case 401: case 403: case 404:
    case 4401: case 4403: case 4404: case 4408: case 4429:
        return "denied";
    default:
        return status >= 100 && status < 400 ? "ok" : "error";
    }
}

static const char *profile_of(const struct cc_principal *p)
{
    if (p->patient_id[0] && p->professional_id[0])
        return "patient,professional";
    if (p->patient_id[0])
        return "patient";
    if (p->professional_id[0])
        return "professional";
    return p->is_admin ? "admin" : NULL;
}

void cc_audit_format(struct cc_sbuf *b, int64_t unix_us,
                     const struct cc_audit_event *ev)
{
    time_t sec = (time_t)(unix_us / 1000000);
    struct tm tm;

    gmtime_r(&sec, &tm);
    cc_sbuf_printf(b, "{\"time\": \"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, (int)(unix_us % 1000000 / 1000));
    field_str(b, "event", ev->event);
    field_str(b, "result", ev->result ? ev->result : result_of(ev->status));
    if (ev->status)
        cc_sbuf_printf(b, ", \"status\": %d", ev->status);
    field_str(b, "remote", ev->peer);
    if (ev->who) {
        field_str(b, "user_id", ev->who->user_id);
        field_str(b, "profile", profile_of(ev->who));
        field_str(b, "patient_id", ev->who->patient_id);
        field_str(b, "professional_id", ev->who->professional_id);
        if (ev->who->is_admin)
            cc_sbuf_adds(b, ", \"admin\": true");
    }
    field_str(b, "chat_id", ev->chat_id);
    field_str(b, "via", ev->via);
    field_str(b, "message_id", ev->message_id);
    cc_sbuf_adds(b, "}\n");
}

/* ------------------------------------------------------------ config */

static int parse_facility(const char *v, int *out)
{
    static const struct {
        const char *name;
        int facility;
    } names[] = {
        { "authpriv", LOG_AUTHPRIV }, { "auth", LOG_AUTH },
        { "daemon", LOG_DAEMON }, { "user", LOG_USER },
        { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
        { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
        { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
        { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(v, names[i].name) == 0) {
            *out = names[i].facility;
            return 0;
        }
    return -1;
}

/* One [audit] key into st: 0, or -1 with *why. */
static int audit_key(struct settings *st, const struct cc_conf_entry *e,
                     const char **why)
{
    if (strcmp(e->key, "file") == 0) {
        free(st->path);
        st->path = e->value[0] ? strdup(e->value) : NULL;
        return 0;
    }
    if (strcmp(e->key, "syslog") == 0)
        return cc_conf_parse_bool(e->value, &st->use_syslog, why);
    if (strcmp(e->key, "syslog_facility") == 0) {
        if (parse_facility(e->value, &st->facility) < 0) {
            *why = "expected authpriv, auth, daemon, user or local0-7";
            return -1;
        }
        return 0;
    }
    if (strcmp(e->key, "required") == 0)
        return cc_conf_parse_bool(e->value, &st->required, why);
    if (strcmp(e->key, "queue_size") == 0)
        return cc_conf_parse_size(e->value, 4096, 1ull << 30,
                                  &st->queue_max, why);
    if (strcmp(e->key, "sync_interval") == 0)
        return cc_conf_parse_duration_ms(e->value, 0, 60000, &st->sync_ms,
                                         why);
    *why = "unknown key";
    return -1;
}

/* [audit] of conf into *st (st->path is the caller's to free).  0 or -1
 * after logging. */
static int parse_settings(const struct cc_conf *conf, struct settings *st)
{
    const struct cc_conf_section *sec = cc_conf_section(conf, "audit");
    const struct cc_conf_entry *e;

    *st = (struct settings){ .facility = LOG_AUTHPRIV,
                             .queue_max = 4 << 20, .sync_ms = 100 };
    if (!sec)
        return 0;
    for (e = sec->entries; e; e = e->next) {
        const char *why = NULL;
        if (audit_key(st, e, &why) < 0) {
            cc_log(CC_LOG_ERROR, "config", "%s:%d: [audit] %s: %s",
                   conf->path, e->line, e->key, why);
            return -1;
        }
    }
    if (!st->path && !st->use_syslog) {
        cc_log(CC_LOG_ERROR, "config", "%s:%d: [audit] needs file = PATH "
               "and/or syslog = yes", conf->path, sec->line);
        return -1;
    }
    st->on = 1;
    return 0;
}

int cc_audit_check(const struct cc_conf *conf)
{
    struct settings st;
    int rc = parse_settings(conf, &st);

    free(st.path);
    return rc;
}

int cc_audit_configure(const struct cc_conf *conf)
{
    struct settings st;

    if (A.on || A.started || parse_settings(conf, &st) < 0)
        return -1;
    A.on = st.on;
    A.path = st.path;
    A.use_syslog = st.use_syslog;
    A.facility = st.facility;
    A.required = st.required;
    A.queue_max = st.queue_max;
    A.sync_ms = st.sync_ms;
    return 0;
}

/* ------------------------------------------------------------ writer */

static int open_file(void)
{
    return open(A.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
                            O_NOCTTY, FILE_MODE);
}

/* A failed write, fdatasync or open: counted; logged once per episode. */
static void failed(struct writer *w, const char *what, int err)
{
    atomic_fetch_add(&n_errors, 1);
    w->retry_at_ms = now_ms() + RETRY_MS;
    if (w->errors++)
        return;
    w->failing_since_ms = now_ms();
    atomic_store(&failing, 1);
    cc_log(CC_LOG_ERROR, "audit", "%s %s failed: %s; %llu events kept and "
           "retried every %d ms%s", what, A.path, strerror(err),
           (unsigned long long)atomic_load(&n_queued), RETRY_MS,
           A.required ? " (required = yes: PHI access refused meanwhile)"
                      : "");
}

/* The batch is written: the end of an episode of errors or losses. */
static void caught_up(struct writer *w)
{
    uint64_t lost;

    if (w->errors) {
        cc_log(CC_LOG_WARN, "audit", "%s writable again after %.1f s "
               "(%llu failed attempts, no event lost)", A.path,
               (double)(now_ms() - w->failing_since_ms) / 1000.0,
               (unsigned long long)w->errors);
        w->errors = 0;
    }
    atomic_store(&failing, 0);
    if (atomic_exchange(&overflowed, 0)) {
        lost = atomic_exchange(&n_lost_episode, 0);
        cc_log(CC_LOG_WARN, "audit", "queue has room again: %llu audit "
               "events were lost while it was full", (unsigned long long)lost);
    }
}

static void send_syslog(const struct cc_sbuf *b)
{
    const char *p = b->p, *end = b->p + b->len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        syslog(A.facility | LOG_INFO, "%.*s", (int)n, p);
        p += n + 1;
    }
}

/* Write the rest of the batch.  0 done (batch emptied), -1 refused (kept
 * for a retry). */
static int write_batch(struct writer *w)
{
    if (A.path && A.fd < 0 && (A.fd = open_file()) < 0) {
        failed(w, "opening", errno);
        return -1;
    }
    while (A.path && w->off < w->batch.len) {
        ssize_t n = write(A.fd, w->batch.p + w->off, w->batch.len - w->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            failed(w, "writing", n < 0 ? errno : EIO);
            return -1;
        }
        w->off += (size_t)n;
        w->dirty = 1;
    }
    if (A.use_syslog)
        send_syslog(&w->batch);
    atomic_fetch_add(&n_written, w->n_events);
    atomic_fetch_sub(&n_queued, w->n_events);
    w->batch.len = w->off = 0;
    w->n_events = 0;
    caught_up(w);
    return 0;
}

static void sync_file(struct writer *w)
{
    w->dirty = 0;
    w->last_sync_ms = now_ms();
    if (A.fd >= 0 && fdatasync(A.fd) < 0 && errno != EINVAL)
        failed(w, "fdatasync of", errno);
}

static void reopen_file(struct writer *w)
{
    int fd;

    if (!A.path)
        return;
    if (A.fd >= 0) {
        if (w->dirty)
            sync_file(w);
        close(A.fd);
    }
    A.fd = fd = open_file();
    if (fd < 0)
        failed(w, "reopening", errno);
    else
        cc_log(CC_LOG_INFO, "audit", "SIGHUP: %s reopened", A.path);
}

/* With A.mu held: until there is something to do (stop, reopen, lines
 * to take, a retry or an fdatasync due). */
static void wait_work(struct writer *w)
{
    for (;;) {
        uint64_t due = 0, now;
        struct timespec ts;

        if (A.stopping || A.reopen || (!w->batch.len && A.q.len))
            return;
        if (w->batch.len)
            due = w->retry_at_ms;
        else if (w->dirty)
            due = w->last_sync_ms + A.sync_ms;
        if (!due) {
            pthread_cond_wait(&A.cv, &A.mu);
            continue;
        }
        if ((now = now_ms()) >= due)
            return;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        due -= now;
        ts.tv_sec += (time_t)(due / 1000);
        ts.tv_nsec += (long)(due % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&A.cv, &A.mu, &ts);
    }
}

/* Shutdown with lines the file refuses: they are lost, and said so. */
static void lose_rest(struct writer *w)
{
    uint64_t n = w->n_events + A.q_events;

    atomic_fetch_add(&n_lost, n);
    atomic_fetch_sub(&n_queued, n);
    cc_log(CC_LOG_ERROR, "audit", "shutting down with %llu audit events "
           "that could not be written to %s: lost", (unsigned long long)n,
           A.path);
}

static void *writer_main(void *arg)
{
    struct writer w = { .last_sync_ms = now_ms() };

    (void)arg;
    pthread_setname_np(pthread_self(), "cc-audit");
    for (;;) {
        int reopen, stop;

        pthread_mutex_lock(&A.mu);
        wait_work(&w);
        if (!w.batch.len && A.q.len) {
            struct cc_sbuf t = w.batch;
            w.batch = A.q;
            w.n_events = A.q_events;
            A.q = t;
            A.q_events = 0;
        }
        reopen = A.reopen;
        stop = A.stopping;
        A.reopen = 0;
        if (stop && !w.batch.len) {
            pthread_mutex_unlock(&A.mu);
            break;
        }
        pthread_mutex_unlock(&A.mu);
        if (reopen)
            reopen_file(&w);
        /* A refused batch waits RETRY_MS, unless this is the end. */
        if (w.batch.len &&
            (!w.errors || stop || reopen || now_ms() >= w.retry_at_ms) &&
            write_batch(&w) < 0 && stop) {
            pthread_mutex_lock(&A.mu);
            lose_rest(&w);
            pthread_mutex_unlock(&A.mu);
            break;
        }
        if (w.dirty && (stop || now_ms() >= w.last_sync_ms + A.sync_ms))
            sync_file(&w);
    }
    if (w.dirty)
        sync_file(&w);
    cc_sbuf_free(&w.batch);
    return NULL;
}

/* ------------------------------------------------------------- entry */

int cc_audit_start(void)
{
    pthread_condattr_t ca;

    if (!A.on)
        return 0;
    if (A.path && (A.fd = open_file()) < 0) {
        int err = errno;
        atomic_fetch_add(&n_errors, 1);
        if (A.required) {
            cc_log(CC_LOG_ERROR, "audit", "cannot open the audit file %s: "
                   "%s ([audit] required = yes: not starting)", A.path,
                   strerror(err));
            return -1;
        }
        atomic_store(&failing, 1);
        cc_log(CC_LOG_ERROR, "audit", "cannot open the audit file %s: %s; "
               "events are kept and it is tried again", A.path,
               strerror(err));
    }
    if (A.use_syslog)
        openlog("carechatd", LOG_PID | LOG_NDELAY, A.facility);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&A.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&A.thread, NULL, writer_main, NULL) != 0) {
        cc_log(CC_LOG_ERROR, "audit", "cannot start the writer thread");
        return -1;
    }
    A.started = 1;
    cc_log(CC_LOG_INFO, "audit", "audit trail to %s%s%s%s", A.path ? A.path
           : "", A.path && A.use_syslog ? " and " : "",
           A.use_syslog ? "syslog" : "",
           A.required ? " (required: PHI access refused when it fails)" : "");
    return 0;
}

void cc_audit_reopen(void)
{
    if (!A.started)
        return;
    pthread_mutex_lock(&A.mu);
    A.reopen = 1;
    pthread_cond_signal(&A.cv);
    pthread_mutex_unlock(&A.mu);
}

void cc_audit_stop(void)
{
    if (A.started) {
        pthread_mutex_lock(&A.mu);
        A.stopping = 1;
        pthread_cond_signal(&A.cv);
        pthread_mutex_unlock(&A.mu);
        pthread_join(A.thread, NULL);
        pthread_cond_destroy(&A.cv);
        A.started = 0;
    }
    A.on = 0;
    if (A.fd >= 0)
        close(A.fd);
    A.fd = -1;
    if (A.use_syslog)
        closelog();
    cc_sbuf_free(&A.q);
    free(A.path);
    A.path = NULL;
}

void cc_audit(const struct cc_audit_event *ev)
{
    struct cc_sbuf line = { 0 };
    int full, was_empty;

    if (!A.on)
        return;
    cc_audit_format(&line, cc_time_now_us(), ev);
    pthread_mutex_lock(&A.mu);
    full = A.q.len + line.len > A.queue_max;
    was_empty = A.q.len == 0;
    if (!full) {
        cc_sbuf_add(&A.q, line.p, line.len);
        A.q_events++;
        atomic_fetch_add(&n_queued, 1);
        if (was_empty)
            pthread_cond_signal(&A.cv);
    }
    pthread_mutex_unlock(&A.mu);
    cc_sbuf_free(&line);
    if (!full)
        return;
    atomic_fetch_add(&n_lost, 1);
    atomic_fetch_add(&n_lost_episode, 1);
    if (!atomic_exchange(&overflowed, 1))
        cc_log(CC_LOG_ERROR, "audit", "audit queue full (%llu bytes "
               "waiting for %s): audit events are being lost%s",
               (unsigned long long)A.queue_max,
               A.path ? A.path : "syslog",
               A.required ? "; PHI access refused (required = yes)" : "");
}

void cc_audit_log(const char *event, const char *result, int status,
                  const char *peer, const struct cc_principal *who,
                  const char *chat_id, const char *message_id)
{
    struct cc_audit_event ev = { .event = event, .result = result,
                                 .status = status, .peer = peer,
                                 .who = who, .chat_id = chat_id,
                                 .message_id = message_id };

    cc_audit(&ev);
}

int cc_audit_join(const char *peer, const struct cc_principal *who,
                  const char *chat_id)
{
    int refuse = cc_audit_refusing();

    cc_audit_log("ws_join", refuse ? "error" : "ok", refuse ? 1013 : 0,
                 peer, who, chat_id, NULL);
    return refuse ? -1 : 0;
}

int cc_audit_refusing(void)
{
    return A.on && A.required &&
           (atomic_load(&failing) || atomic_load(&overflowed));
}

void cc_audit_counters(struct cc_audit_counters *out)
{
    out->events_written = atomic_load(&n_written);
    out->events_lost = atomic_load(&n_lost);
    out->write_errors = atomic_load(&n_errors);
    out->queued = atomic_load(&n_queued);
}
