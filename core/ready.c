/*
 * ready.c - readiness (see ready.h).
 */
#include "ready.h"
#include "audit.h"
#include "conn.h"
#include "listen.h"
#include "msg.h"
#include "router.h"
#include "server.h"
#include "store.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_SEC 2 /* storage must answer the read within it */


/* The plugin's own verdict: 1 fit (or it cannot tell), 0 with why. */
static int plugin_ok(const struct cc_plugin_inst *p, const char *kind,
                     char *why, size_t why_len)
{
    const struct cc_plugin *d = p->desc;
    char r[96] = "";

    if (!d || !CC_HAS_MEMBER(d, struct cc_plugin, health) || !d->health)
        return 1;
    if (d->health(p->inst, r, sizeof r) == CC_OK)
        return 1;
    r[sizeof r - 1] = '\0';
    snprintf(why, why_len, "%s: %s", kind, r[0] ? r : "unavailable");
    return 0;
}

int cc_ready(char *why, size_t why_len)
{
    if (cc_srv->shutting_down) {
        snprintf(why, why_len, "shutting down");
        return 0;
    }
    if (cc_listen_paused()) {
        snprintf(why, why_len, "not accepting: out of file descriptors");
        return 0;
    }
    if (cc_audit_refusing()) {
        snprintf(why, why_len, "audit trail failing (required = yes)");
        return 0;
    }
    for (size_t i = 0; i < cc_server_n_plugins(); i++) {
        const char *kind;
        const struct cc_plugin_inst *p = cc_server_plugin(i, &kind);
        /* A notification receiver that is down does not stop the chat:
         * what is due waits in storage (its metrics say so). */
        if (strcmp(kind, "notify") != 0 &&
            !plugin_ok(p, kind, why, why_len))
            return 0;
    }
    return 1;
}

/* A /readyz that waits for storage to answer a read. */
struct probe {
    struct cc_conn *c;
    struct event *timer;
    int answered;
};

static void not_ready(struct cc_conn *c, const char *why)
{
    struct cc_sbuf b = { 0 };

    cc_sbuf_adds(&b, "{\"status\": \"not ready\", \"reason\": ");
    cc_json_str(&b, why, strlen(why));
    cc_sbuf_adds(&b, "}");
    cc_conn_respond(c, 503, "Retry-After: 5\r\n", b.p, b.len);
    cc_sbuf_free(&b);
}

static void probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    char why[64];

    (void)fd;
    (void)what;
    p->answered = 1; /* the connection stays held until storage answers */
    snprintf(why, sizeof why, "storage: no answer within %d s", PROBE_SEC);
    not_ready(p->c, why);
}

static void probe_done(void *arg, int status,
                       const struct cc_store_result *res)
{
    struct probe *p = arg;
    char why[160];

    if (cc_conn_release(p->c) && !p->answered) {
        if (status == CC_OK || status == CC_E_NOTFOUND) {
            cc_conn_respond_lit(p->c, 200, NULL, "{\"status\": \"ready\"}");
        } else {
            snprintf(why, sizeof why, "storage: %s",
                     res && res->error ? res->error : "unavailable");
            not_ready(p->c, why);
        }
    }
    event_free(p->timer);
    free(p);
}

/* GET /readyz (arg non-NULL) or /healthz. */
static void respond(struct cc_conn *c, const struct cc_route_match *m)
{
    int readyz = m->arg != NULL;
    static const char nobody[] = "00000000-0000-0000-0000-000000000000";
    struct probe *p;
    char why[160];

    if (!readyz) {
        cc_conn_respond_lit(c, 200, NULL, "{\"status\": \"ok\"}");
        return;
    }
    if (!cc_ready(why, sizeof why)) {
        not_ready(c, why);
        return;
    }
    /* A read through the whole storage path: an idle outage shows too. */
    p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->c = c;
    p->timer = evtimer_new(cc_srv->base, probe_timeout, p);
    if (!p->timer)
        abort();
    cc_conn_hold(c);
    if (cc_store_profile_get(CC_SIDE_PATIENT, nobody, probe_done, p) !=
        CC_OK) {
        cc_conn_release(c);
        event_free(p->timer);
        free(p);
        not_ready(c, "storage: refused the check (queue full?)");
        return;
    }
    if (!p->answered) /* the plugin may have answered at once */
        event_add(p->timer, &(struct timeval){ PROBE_SEC, 0 });
}

void cc_ready_routes(void)
{
    unsigned both = CC_PORT_PUBLIC | CC_PORT_ADMIN;

    cc_route_add(both, CC_M_GET, "/healthz", respond, NULL);
    cc_route_add(both, CC_M_GET, "/readyz", respond, "readyz");
}
