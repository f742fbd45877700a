/*
 * webhook.c - the notify plugin `webhook` (CC_KIND_NOTIFY, ABI 1.4):
 * each notification the host hands to send() becomes one signed HTTP
 * POST to the configured url.
 *
 * The request:
 *   POST <url>
 *   Content-Type: application/json
 *   X-Carechat-Signature: sha256=<hex HMAC-SHA256 of the body, keyed
 *                         with the content of secret_file>
 *   X-Carechat-Notification: <notification id>
 *   {"id": ..., "event": "unread", "chat_id": ..., "recipient": {...},
 *    "first_unread": ..., "unread": N, "urgent": ..., "at": ...}
 * (payload.h has the body; ids and counts only, never content or a
 * token).  A retry by the host carries the same id, so the receiver
 * deduplicates by it.
 *
 * The answer: 2xx is CC_OK; 408, 429, 5xx, any other status (a redirect
 * is not followed) and every transport failure (refused, reset, TLS,
 * timeout) is CC_E_UNAVAIL, which the host retries with backoff; other
 * 4xx are CC_E_INVAL, never deliverable, and the host drops them.
 *
 * Non-blocking: libcurl's multi interface on the host's loop (multi.h),
 * names resolved by libcurl's threaded resolver; at most max_in_flight
 * requests at once, beyond which send() answers CC_E_BUSY.  Each send()
 * that returned CC_OK gets its callback exactly once, on the loop
 * thread, never inside send(); stop() gives what is in flight a short
 * grace, then aborts the rest with CC_E_UNAVAIL (the host keeps them
 * due in storage and sends them after a restart).
 *
 * Log lines name the receiver as scheme://host:port only: the url's
 * path, query or user info may be a credential (many webhook urls are).
 * The secret and the bodies are never logged; a notification is named
 * by its id.  Failures are logged when they start or change, and once
 * when deliveries succeed again, with how many failed meanwhile.
 */
#include <carechat/notify.h>
#include <carechat/plugin.h>

#include "multi.h"
#include "payload.h"
#include "pconf.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MIN 32          /* bytes: the hash size (RFC 2104 sec. 3) */
#define SECRET_MAX 4096
#define ID_MAX 64              /* bytes of a notification id (a UUID) */
#define HEALTH_FAILURES 3      /* transport failures in a row: unhealthy */
#define STOP_GRACE_MS 2000     /* stop(): in-flight requests may finish */

struct wh;

/* One POST in flight.  Owns its easy handle, headers and body. */
struct wh_req {
    struct wh *wh;
    CURL *easy;
    struct curl_slist *headers;
    char *body;                /* the exact bytes signed and sent */
    cc_notify_cb cb;
    void *arg;
    char id[ID_MAX + 1];       /* the notification's, for log lines */
    char errbuf[CURL_ERROR_SIZE];
    struct wh_req *prev, *next;
};

struct wh {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    int curl_ready;            /* curl_global_init succeeded */
    /* config */
    char *url;
    char where[300];           /* scheme://host:port, for log lines */
    int https;
    char *cafile;
    unsigned char *secret;     /* wiped and freed on destroy */
    size_t secret_len;
    uint64_t timeout_ms;
    long max_in_flight;
    /* state */
    struct wh_multi *multi;    /* from start() to destroy() */
    struct wh_req *reqs;       /* in flight; in_flight of them */
    long in_flight;
    int stopping;              /* stop() was called: send() refuses */
    int aborting;              /* abort_all() is running */
    cc_post_cb stop_done;      /* set while stop() waits */
    void *stop_arg;
    cc_timer *grace;           /* stop(): aborts what is left */
    cc_timer *stopped;         /* stop(): done, after the last cb */
    long last_outcome;         /* 0: 2xx (or none yet), -1: transport
                                  failure, else the HTTP status */
    uint64_t failed_since_ok;  /* failures since the last 2xx */
    int transport_streak;      /* transport failures in a row */
    const char *transport_why; /* curl's text for the last, static */
    /* counters for metrics() */
    uint64_t n_requests, n_delivered, n_failed_transport;
    uint64_t n_failed_status, n_rejected, n_busy;
};

#define LOG(wh, lvl, ...) (wh)->host->log((wh)->ctx, lvl, __VA_ARGS__)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p)
        abort();
    return p;
}

/* ----------------------------------------------------------- config */

/* url: an absolute http or https URL with a host.  Keeps a copy, and
 * scheme://host:port for log lines.  NULL or a static reason. */
static const char *set_url(struct wh *wh, const char *v)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    const char *why = NULL;

    if (!u)
        return "out of memory";
    if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK)
        why = "is not a URL (such as https://push.example/carechat)";
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        why = "must be an http:// or https:// URL";
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
             !host[0])
        why = "names no host";
    else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
             CURLUE_OK)
        why = "has a bad port";
    if (!why) {
        free(wh->url);
        wh->url = xstrdup(v);
        wh->https = strcmp(scheme, "https") == 0;
        snprintf(wh->where, sizeof wh->where, "%s://%s:%s", scheme, host,
                 port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return why;
}

/* cafile: a PEM file with at least one certificate (checked now, so a
 * wrong path stops the start rather than every delivery).  A failed read
 * leaves nothing in OpenSSL's error queue, which the loop thread's TLS
 * code shares. */
static const char *set_cafile(struct wh *wh, const char *v)
{
    FILE *f;
    X509 *cert;

    if (!v[0])
        return "needs a file name";
    f = fopen(v, "re");
    if (!f)
        return "cannot be read";
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert) {
        ERR_clear_error();
        return "holds no PEM certificate";
    }
    X509_free(cert);
    free(wh->cafile);
    wh->cafile = xstrdup(v);
    return NULL;
}

static void wipe_secret(struct wh *wh)
{
    if (wh->secret) {
        explicit_bzero(wh->secret, wh->secret_len);
        free(wh->secret);
    }
    wh->secret = NULL;
    wh->secret_len = 0;
}

/* secret_file: the HMAC key is the file's content (pconf.h). */
static const char *read_secret(struct wh *wh, const char *path)
{
    const char *why;
    size_t n = 0;
    char *buf;

    if (!path[0])
        return "needs a file name";
    buf = cc_pconf_read_secret(path, SECRET_MAX, &n, &why);
    if (!buf) {
        LOG(wh, CC_LOG_ERROR, "secret_file %s %s", path, why);
        return strcmp(why, "is empty") == 0 ? "the secret file is empty"
               : strcmp(why, "is too large") == 0
                   ? "the secret file is larger than 4096 bytes"
                   : "cannot read the secret file";
    }
    if (n < SECRET_MIN) {
        explicit_bzero(buf, n);
        free(buf);
        return "the secret is shorter than 32 bytes (HMAC-SHA256 wants a "
               "key at least the hash size, RFC 2104)";
    }
    wipe_secret(wh);
    wh->secret = (unsigned char *)buf;
    wh->secret_len = n;
    return NULL;
}

/* cfg_iter callback: one key of [notify] (the host's own keys, plugin,
 * delay, urgent_repeat, urgent_max and max_age, never reach it). */
static int wh_cfg_key(void *arg, const char *key, const char *value,
                      const char **reason)
{
    struct wh *wh = arg;

    if (strcmp(key, "url") == 0)
        *reason = set_url(wh, value);
    else if (strcmp(key, "cafile") == 0)
        *reason = set_cafile(wh, value);
    else if (strcmp(key, "secret_file") == 0)
        *reason = read_secret(wh, value);
    else if (strcmp(key, "timeout") == 0)
        *reason = cc_pconf_duration_ms(value, 100, 120000,
                                       &wh->timeout_ms) < 0
                      ? "must be a duration from 100ms to 120s (such as "
                        "10s)"
                      : NULL;
    else if (strcmp(key, "max_in_flight") == 0)
        *reason = cc_pconf_long(value, 1, 100000, &wh->max_in_flight) < 0
                      ? "must be a number from 1 to 100000"
                      : NULL;
    else
        *reason = "unknown key (webhook takes url, cafile, secret_file, "
                  "timeout, max_in_flight)";
    return *reason ? CC_E_INVAL : CC_OK;
}

/* What only the whole section tells. */
static int check_section(struct wh *wh)
{
    if (!wh->url) {
        wh->host->cfg_error(wh->ctx, NULL, "missing required key \"url\"");
        return CC_E_INVAL;
    }
    if (!wh->secret) {
        wh->host->cfg_error(wh->ctx, NULL, "missing required key "
                            "\"secret_file\" (the key receivers check "
                            "X-Carechat-Signature with)");
        return CC_E_INVAL;
    }
    if (wh->cafile && !wh->https) {
        wh->host->cfg_error(wh->ctx, "cafile", "is for an https url; url "
                            "is %s", wh->where);
        return CC_E_INVAL;
    }
    return CC_OK;
}

static void wh_free(struct wh *wh)
{
    wipe_secret(wh);
    free(wh->url);
    free(wh->cafile);
    if (wh->curl_ready)
        curl_global_cleanup();
    free(wh);
}

static int wh_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct wh *wh = xcalloc(1, sizeof *wh);

    wh->host = host;
    wh->ctx = ctx;
    wh->timeout_ms = 10000;
    wh->max_in_flight = 64;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        LOG(wh, CC_LOG_ERROR, "libcurl cannot be initialised");
        free(wh);
        return CC_E_FAIL;
    }
    wh->curl_ready = 1;
    if (host->cfg_iter(ctx, wh_cfg_key, wh) != CC_OK ||
        check_section(wh) != CC_OK) {
        wh_free(wh);
        return CC_E_INVAL;
    }
    *inst = wh;
    return CC_OK;
}

/* ------------------------------------------------------------ requests */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;   /* the answer's body is not used */
}

static void req_free(struct wh_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static int add_header(struct wh_req *r, const char *h)
{
    struct curl_slist *l = curl_slist_append(r->headers, h);

    if (!l)
        return -1;
    r->headers = l;
    return 0;
}

/* The easy handle of r: the POST of r->body (len bytes) signed with sig.
 * Returns 0, or -1 when libcurl refuses (out of memory, or an option
 * this libcurl lacks). */
static int req_setup(struct wh *wh, struct wh_req *r, size_t len,
                     const char *sig)
{
    char h[128];
    CURL *e = curl_easy_init();
    int rc = 0;

    if (!e)
        return -1;
    r->easy = e;
    snprintf(h, sizeof h, "X-Carechat-Signature: %s", sig);
    rc |= add_header(r, "Content-Type: application/json");
    rc |= add_header(r, h);
    snprintf(h, sizeof h, "X-Carechat-Notification: %s", r->id);
    rc |= add_header(r, h);
    rc |= add_header(r, "Expect:");   /* no 100-continue round trip */
    if (rc)
        return -1;
    rc |= (int)curl_easy_setopt(e, CURLOPT_URL, wh->url);
    rc |= (int)curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    rc |= (int)curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    rc |= (int)curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    rc |= (int)curl_easy_setopt(e, CURLOPT_USERAGENT, "carechat-webhook/1");
    /* No signals from the resolver or timeouts: the loop owns them. */
    rc |= (int)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    rc |= (int)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    rc |= (int)curl_easy_setopt(e, CURLOPT_PROTOCOLS,
                                (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    rc |= (int)curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= (int)curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    rc |= (int)curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    rc |= (int)curl_easy_setopt(e, CURLOPT_SSLVERSION,
                                (long)CURL_SSLVERSION_TLSv1_2);
    if (wh->cafile)
        rc |= (int)curl_easy_setopt(e, CURLOPT_CAINFO, wh->cafile);
    /* The url is the whole route: no proxy from the environment. */
    rc |= (int)curl_easy_setopt(e, CURLOPT_PROXY, "");
    rc |= (int)curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)wh->timeout_ms);
    rc |= (int)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    rc |= (int)curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    rc |= (int)curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)r);
    return rc ? -1 : 0;
}

/* A notification id goes into a header: a UUID's characters only. */
static int id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') ||
              (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-'))
            return 0;
    return 1;
}

/* cc_notify_api.send (notify.h): sign n's body and start its POST;
 * loop thread, never blocks.  CC_OK: cb comes later, once, from the loop
 * (on_done, or abort_all at stop).  Without cb: CC_E_BUSY at
 * max_in_flight, CC_E_INVAL for a notification with no recipient, a
 * missing id or one that is not a UUID's characters (it goes into a
 * header), CC_E_UNAVAIL after stop(), CC_E_FAIL when libcurl or OpenSSL
 * refuse.  n is not kept: the body is built here. */
static int wh_send(void *inst, const struct cc_notification *n,
                   cc_notify_cb cb, void *arg)
{
    struct wh *wh = inst;
    char sig[WH_SIGNATURE_LEN + 1];
    struct wh_req *r;
    size_t len = 0;

    if (wh->stopping || !wh->multi)
        return CC_E_UNAVAIL;
    if (!n || !cb || !CC_HAS_MEMBER(n, struct cc_notification, at_us) ||
        !id_ok(n->id))
        return CC_E_INVAL;
    if (wh->in_flight >= wh->max_in_flight) {
        wh->n_busy++;
        return CC_E_BUSY;
    }
    r = xcalloc(1, sizeof *r);
    r->wh = wh;
    r->cb = cb;
    r->arg = arg;
    memcpy(r->id, n->id, strlen(n->id) + 1);
    r->body = wh_body(n, &len);
    if (!r->body) {
        free(r);
        return CC_E_INVAL;
    }
    if (wh_sign(wh->secret, wh->secret_len, r->body, len, sig) < 0 ||
        req_setup(wh, r, len, sig) < 0 ||
        wh_multi_add(wh->multi, r->easy) < 0) {
        LOG(wh, CC_LOG_ERROR, "notification %s: cannot set up the request "
            "(libcurl or OpenSSL refused)", r->id);
        req_free(r);
        return CC_E_FAIL;
    }
    r->next = wh->reqs;
    if (wh->reqs)
        wh->reqs->prev = r;
    wh->reqs = r;
    wh->in_flight++;
    wh->n_requests++;
    return CC_OK;
}

/* ------------------------------------------------------------ outcomes */

/* Log an outcome when it differs from the last one: a failure when it
 * starts or changes, a success once after failures, with their count. */
static void log_outcome(struct wh *wh, long outcome, const struct wh_req *r,
                        int status)
{
    if (outcome == 0 && wh->last_outcome != 0)
        LOG(wh, CC_LOG_INFO, "%s takes notifications again (%llu failed "
            "since the last one delivered)", wh->where,
            (unsigned long long)wh->failed_since_ok);
    else if (outcome < 0 && wh->last_outcome >= 0)
        LOG(wh, CC_LOG_WARN, "notification %s not delivered to %s: %s; "
            "it is tried again later", r->id, wh->where,
            r->errbuf[0] ? r->errbuf : wh->transport_why);
    else if (outcome > 0 && outcome != wh->last_outcome)
        LOG(wh, CC_LOG_WARN, "notification %s: %s answered HTTP %ld; %s",
            r->id, wh->where, outcome,
            status == CC_E_INVAL ? "it is dropped (never deliverable: "
                                   "check url and the receiver's logs)"
                                 : "it is tried again later");
    wh->last_outcome = outcome;
    wh->failed_since_ok = outcome == 0 ? 0 : wh->failed_since_ok + 1;
}

/* The status for the host, from a transfer's end; counts it. */
static int classify(struct wh *wh, const struct wh_req *r, CURLcode rc,
                    long code)
{
    int status;

    if (rc != CURLE_OK) {
        wh->n_failed_transport++;
        wh->transport_streak++;
        wh->transport_why = curl_easy_strerror(rc);
        log_outcome(wh, -1, r, CC_E_UNAVAIL);
        return CC_E_UNAVAIL;
    }
    wh->transport_streak = 0;
    if (code >= 200 && code <= 299) {
        wh->n_delivered++;
        status = CC_OK;
    } else if (code >= 400 && code <= 499 && code != 408 && code != 429) {
        wh->n_rejected++;
        status = CC_E_INVAL;
    } else {
        wh->n_failed_status++;   /* 408, 429, 5xx, 3xx, anything else */
        status = CC_E_UNAVAIL;
    }
    log_outcome(wh, status == CC_OK ? 0 : code, r, status);
    return status;
}

static void stop_complete(struct wh *wh)
{
    cc_post_cb done = wh->stop_done;

    wh->host->timer_cancel(wh->grace);
    wh->host->timer_cancel(wh->stopped);
    wh->grace = wh->stopped = NULL;
    wh->stop_done = NULL;
    if (done)
        done(wh->stop_arg);
}

static void on_stopped(void *arg)
{
    stop_complete(arg);
}

/* r ends with status: out of the list, freed, then its callback.  The
 * last one to end while stop() waits completes the stop, from a timer
 * of its own (the host may free the plugin once done runs: not from
 * inside libcurl). */
static void finish(struct wh *wh, struct wh_req *r, int status)
{
    cc_notify_cb cb = r->cb;
    void *arg = r->arg;

    if (r->prev)
        r->prev->next = r->next;
    else
        wh->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    wh->in_flight--;
    req_free(r);
    cb(arg, status);
    if (wh->stopping && wh->in_flight == 0 && !wh->aborting &&
        wh->stop_done && !wh->stopped)
        wh->stopped = wh->host->timer_add(wh->ctx, 0, 0, on_stopped, wh);
}

/* wh_multi's report of a transfer that ended. */
static void on_done(void *arg, CURL *easy, CURLcode rc)
{
    struct wh *wh = arg;
    struct wh_req *r = NULL;
    long code = 0;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (rc == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    finish(wh, r, classify(wh, r, rc, code));
}

/* Abort every request in flight: each callback gets CC_E_UNAVAIL. */
static void abort_all(struct wh *wh)
{
    wh->aborting = 1;
    while (wh->reqs) {
        struct wh_req *r = wh->reqs;

        wh_multi_remove(wh->multi, r->easy);
        finish(wh, r, CC_E_UNAVAIL);
    }
    wh->aborting = 0;
}

/* ------------------------------------------------------- lifecycle */

static int wh_start(void *inst)
{
    struct wh *wh = inst;

    wh->multi = wh_multi_new(wh->host, wh->ctx, on_done, wh);
    if (!wh->multi) {
        LOG(wh, CC_LOG_ERROR, "libcurl cannot make a multi handle");
        return CC_E_FAIL;
    }
    if (!wh_multi_async_dns())
        LOG(wh, CC_LOG_WARN, "this libcurl resolves names synchronously "
            "(no threaded resolver or c-ares): a slow DNS lookup of the "
            "url's host blocks the event loop; use an IP address, or a "
            "libcurl built with one");
    LOG(wh, CC_LOG_INFO, "notifications go to %s (timeout %llu ms, at "
        "most %ld in flight)", wh->where,
        (unsigned long long)wh->timeout_ms, wh->max_in_flight);
    return CC_OK;
}

static void on_grace_over(void *arg)
{
    struct wh *wh = arg;

    wh->host->timer_cancel(wh->grace);
    wh->grace = NULL;
    if (wh->in_flight)
        LOG(wh, CC_LOG_WARN, "stopping: %ld notification(s) in flight "
            "aborted; they are sent after a restart", wh->in_flight);
    abort_all(wh);
    stop_complete(wh);
}

static void wh_stop(void *inst, cc_post_cb done, void *arg)
{
    struct wh *wh = inst;
    uint64_t grace = wh->timeout_ms < STOP_GRACE_MS ? wh->timeout_ms
                                                    : STOP_GRACE_MS;

    wh->stopping = 1;
    if (wh->in_flight == 0) {
        done(arg);
        return;
    }
    wh->stop_done = done;
    wh->stop_arg = arg;
    wh->grace = wh->host->timer_add(wh->ctx, grace, 0, on_grace_over, wh);
    if (!wh->grace)
        on_grace_over(wh);
}

static void wh_destroy(void *inst)
{
    struct wh *wh = inst;

    if (!wh)
        return;
    if (wh->multi) {
        abort_all(wh);   /* none after stop(); a failed start has none */
        wh_multi_free(wh->multi);
    }
    wh->host->timer_cancel(wh->grace);
    wh->host->timer_cancel(wh->stopped);
    wh_free(wh);
}

static const struct cc_notify_api wh_api = {
    .struct_size = sizeof(struct cc_notify_api),
    .send = wh_send,
};

static const void *wh_get_interface(void *inst, uint32_t kind)
{
    (void)inst;
    return kind == CC_KIND_NOTIFY ? &wh_api : NULL;
}

/* Unhealthy when the receiver could not be reached HEALTH_FAILURES times
 * in a row; an HTTP answer of any status means it is reachable. */
static int wh_health(void *inst, char *why, size_t why_len)
{
    struct wh *wh = inst;

    if (wh->transport_streak < HEALTH_FAILURES)
        return CC_OK;
    snprintf(why, why_len, "webhook %s unreachable (%d requests in a row: "
             "%s)", wh->where, wh->transport_streak, wh->transport_why);
    return CC_E_UNAVAIL;
}

static void wh_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    struct wh *wh = inst;

    emit(arg, "webhook_requests_total", "Notifications POSTed.",
         CC_METRIC_COUNTER, (double)wh->n_requests);
    emit(arg, "webhook_delivered_total", "Requests answered 2xx.",
         CC_METRIC_COUNTER, (double)wh->n_delivered);
    emit(arg, "webhook_failed_transport_total", "Requests that got no "
         "answer (refused, reset, TLS, timeout); retried by the host.",
         CC_METRIC_COUNTER, (double)wh->n_failed_transport);
    emit(arg, "webhook_failed_status_total", "Requests answered 408, 429, "
         "5xx or another non-2xx, non-4xx status; retried by the host.",
         CC_METRIC_COUNTER, (double)wh->n_failed_status);
    emit(arg, "webhook_rejected_total", "Requests answered with another "
         "4xx; dropped by the host.", CC_METRIC_COUNTER,
         (double)wh->n_rejected);
    emit(arg, "webhook_busy_total", "Notifications refused with "
         "max_in_flight requests in flight.", CC_METRIC_COUNTER,
         (double)wh->n_busy);
    emit(arg, "webhook_in_flight", "Requests not yet answered.",
         CC_METRIC_GAUGE, (double)wh->in_flight);
}

static const struct cc_plugin wh_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 4,
    .kinds = CC_KIND_NOTIFY,
    .name = "webhook",
    .version = "1.0.0",
    .create = wh_create,
    .start = wh_start,
    .reload = NULL,
    .stop = wh_stop,
    .destroy = wh_destroy,
    .get_interface = wh_get_interface,
    .health = wh_health,
    .metrics = wh_metrics,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 4) || !host ||
        !CC_HAS_MEMBER(host, struct cc_host_api, timer_cancel))
        return CC_E_ABI;
    *out = &wh_plugin;
    return CC_OK;
}
