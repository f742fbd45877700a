/*
 * storage-faulty.c - a test-only storage plugin that makes the Nth call of
 * a chosen storage operation fail (after SQLite's *fault.test), for
 * tests/fault/test_storage_calls.py and tests/cases.
 *
 * It is built like an integrator's plugin (public headers only, one
 * exported symbol) and wraps a real storage plugin: it dlopens the file
 * named by its key fault_inner (storage-sqlite.so, storage-postgres.so),
 * hands it the host's services with its own keys hidden from cfg_iter and
 * cfg_get (the inner plugin refuses unknown keys), and forwards every call
 * unchanged, callback and all, but the one armed to fail.
 *
 *   [storage]
 *   plugin = /path/to/storage-faulty.so
 *   fault_inner = /path/to/storage-sqlite.so
 *   fault_socket = /tmp/x/fault.sock   ; the control socket (optional)
 *   path = ...                         ; the inner plugin's own keys
 *
 * The control socket is a Unix datagram socket; each datagram is one
 * command and gets one answer, sent back to the sender's address:
 *
 *   arm OP N KIND   the Nth call of OP from now fails as KIND; "ok"
 *   disarm          no fault armed; "ok"
 *   status          "fired=F armed=OP/LEFT/KIND calls=OP:N,..." (armed=-
 *                   when none): faults fired so far, and calls per OP
 *
 * OP is a member of struct cc_storage_api (profile_put, ..., mark_read,
 * message_purge, and 1.4's profile_owner_set, ..., notify_done).  KIND
 * is one of the ways a call fails that the host must tell apart:
 *
 *   busy        refused at the call, CC_E_BUSY (a full queue); the
 *               callback is never called
 *   unavail     refused at the call, CC_E_UNAVAIL (the database is down)
 *   fail        taken, then the callback gets CC_E_FAIL; nothing stored
 *   cb_unavail  taken, then the callback gets CC_E_UNAVAIL; nothing stored
 *   lost        forwarded and done by the inner plugin (a message is
 *               committed), then reported CC_E_UNAVAIL: the answer was
 *               lost on its way back, as when a database connection
 *               breaks after COMMIT
 *
 * Everything here runs on the loop thread (storage calls, callbacks, the
 * control socket's watch), so there is no locking.  One instance per
 * process: the key filter reaches the host through a static.
 *
 * FAULTY_ABI_MINOR (a build flag) makes the descriptor claim an older ABI
 * minor, so the host treats the wrapper as an older plugin (1.1: no
 * client_id); the inner plugin must be of that minor or later.
 */
#include <carechat/storage.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef FAULTY_ABI_MINOR
#define FAULTY_ABI_MINOR CC_ABI_MINOR
#endif
#define FAULTY_ABI (((uint32_t)CC_ABI_MAJOR << 16) | FAULTY_ABI_MINOR)

enum fy_op {
    OP_PROFILE_PUT, OP_PROFILE_GET, OP_CHAT_OPEN, OP_CHAT_GET, OP_CHAT_LIST,
    OP_MESSAGE_APPEND, OP_MESSAGE_LIST, OP_MARK_READ, OP_MESSAGE_PURGE,
    OP_PROFILE_OWNER_SET, OP_PROFILE_NAME_SET, OP_MARK_SET, OP_TICKET_PUT,
    OP_TICKET_TAKE, OP_NOTIFY_CLAIM, OP_NOTIFY_DONE,
    N_OPS
};

static const char *const op_names[N_OPS] = {
    "profile_put", "profile_get", "chat_open", "chat_get", "chat_list",
    "message_append", "message_list", "mark_read", "message_purge",
    "profile_owner_set", "profile_name_set", "mark_set", "ticket_put",
    "ticket_take", "notify_claim", "notify_done",
};

enum fy_kind { K_NONE, K_BUSY, K_UNAVAIL, K_FAIL, K_CB_UNAVAIL, K_LOST };

static const char *const kind_names[] = {
    "-", "busy", "unavail", "fail", "cb_unavail", "lost",
};

struct fy {
    const struct cc_host_api *host;  /* the real host's services */
    cc_plugin_ctx *ctx;
    struct cc_host_api inner_host;   /* host's, with our keys hidden */
    const struct cc_plugin *desc;    /* the inner plugin's */
    void *inner;
    const struct cc_storage_api *api;  /* the inner plugin's table */
    struct cc_storage_api table;       /* ours, handed to the host */
    int fd;                          /* control socket, or -1 */
    cc_watch *watch;
    char *sock_path;                 /* bound path, unlinked at stop */
    enum fy_op armed_op;
    enum fy_kind armed_kind;         /* K_NONE: nothing armed */
    unsigned long left;              /* calls of armed_op until it fires */
    unsigned long fired;             /* faults fired since start */
    unsigned long calls[N_OPS];      /* calls per operation */
    unsigned pending;                /* posted answers not yet run */
    int stopping, inner_stopped;     /* stop(): waiting for both to end */
    cc_post_cb done;
    void *done_arg;
};

/* The host table the entry received; valid until the process exits. */
static const struct cc_host_api *real_host;

/* ------------------------------------------------- the keys we hide */

static int own_key(const char *key)
{
    return strcmp(key, "fault_inner") == 0 ||
           strcmp(key, "fault_socket") == 0;
}

struct iter_arg {
    cc_cfg_cb cb;
    void *arg;
};

static int skip_own(void *arg, const char *key, const char *value,
                    const char **reason)
{
    struct iter_arg *ia = arg;

    return own_key(key) ? CC_OK : ia->cb(ia->arg, key, value, reason);
}

/* The inner plugin's cfg_iter: the section without our keys. */
static int inner_cfg_iter(cc_plugin_ctx *ctx, cc_cfg_cb cb, void *arg)
{
    struct iter_arg ia = { cb, arg };

    return real_host->cfg_iter(ctx, skip_own, &ia);
}

/* The inner plugin's cfg_get: NULL for our keys. */
static const char *inner_cfg_get(cc_plugin_ctx *ctx, const char *key)
{
    return own_key(key) ? NULL : real_host->cfg_get(ctx, key);
}

/* ------------------------------------------------------- faults */

/* A callback answer of ours, posted to run after the call returned. */
struct shot {
    struct fy *fy;
    cc_store_cb cb;
    void *arg;
    int status;   /* what cb gets */
};

/* Stop completes when the inner plugin has stopped and our own posted
 * answers have run, whichever comes last. */
static void maybe_stopped(struct fy *fy)
{
    if (fy->stopping && fy->inner_stopped && !fy->pending) {
        fy->stopping = 0;
        fy->done(fy->done_arg);
    }
}

static void answer(struct shot *s)
{
    struct cc_store_result res;

    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    res.error = "injected by storage-faulty";
    s->cb(s->arg, s->status, &res);
}

/* fail / cb_unavail: the posted answer; nothing reached the inner. */
static void shot_posted(void *arg)
{
    struct shot *s = arg;
    struct fy *fy = s->fy;

    answer(s);
    free(s);
    fy->pending--;
    maybe_stopped(fy);
}

/* lost: the inner plugin's answer, which the caller never sees but as
 * CC_E_UNAVAIL (what the inner plugin did is done). */
static void shot_lost(void *arg, int status,
                      const struct cc_store_result *res)
{
    struct shot *s = arg;

    if (status != CC_OK) {
        s->cb(s->arg, status, res);  /* it failed anyway: as it is */
    } else {
        s->status = CC_E_UNAVAIL;
        answer(s);
    }
    free(s);
}

static enum fy_kind kind_parse(const char *s)
{
    for (int k = K_BUSY; k <= K_LOST; k++)
        if (strcmp(s, kind_names[k]) == 0)
            return (enum fy_kind)k;
    return K_NONE;
}

static int op_parse(const char *s)
{
    for (int i = 0; i < N_OPS; i++)
        if (strcmp(s, op_names[i]) == 0)
            return i;
    return -1;
}

/* Count a call of op and apply the armed fault when this call is the
 * one.  Returns 1 when the caller is to forward the call, with *cb and
 * *arg (which a lost fault replaces by its own; settle() frees them when
 * the inner plugin refuses the call); 0 when the call is answered here,
 * with *rc its return value (a refusal, or CC_OK with an answer posted). */
static int pass(struct fy *fy, enum fy_op op, cc_store_cb *cb, void **arg,
                int *rc)
{
    enum fy_kind kind = fy->armed_kind;
    struct shot *s;

    fy->calls[op]++;
    if (kind == K_NONE || fy->armed_op != op || --fy->left > 0)
        return 1;
    fy->armed_kind = K_NONE;
    fy->fired++;
    fy->host->log(fy->ctx, CC_LOG_INFO, "faulty: call %lu of %s fails: %s",
                  fy->calls[op], op_names[op], kind_names[kind]);
    if (kind == K_BUSY || kind == K_UNAVAIL) {
        *rc = kind == K_BUSY ? CC_E_BUSY : CC_E_UNAVAIL;
        return 0;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        *rc = CC_E_NOMEM;  /* refused at the call: cb is not called */
        return 0;
    }
    s->fy = fy;
    s->cb = *cb;
    s->arg = *arg;
    if (kind == K_LOST) {
        *cb = shot_lost;
        *arg = s;
        return 1;
    }
    s->status = kind == K_FAIL ? CC_E_FAIL : CC_E_UNAVAIL;
    if (fy->host->post(fy->ctx, shot_posted, s) != CC_OK) {
        free(s);
        *rc = CC_E_BUSY;  /* cannot answer later: refuse now */
        return 0;
    }
    fy->pending++;
    *rc = CC_OK;
    return 0;
}

/* After forwarding: a lost fault's shot the inner plugin refused will
 * never be called back; free it.  Returns rc. */
static int settle(cc_store_cb cb, void *arg, int rc)
{
    if (rc != CC_OK && cb == shot_lost)
        free(arg);
    return rc;
}

/* ------------------------------------------------ the storage API */

static int fy_profile_put(void *inst, int32_t side, const char *profile_id,
                          const char *user_id, cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_PROFILE_PUT, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->profile_put(fy->inner, side, profile_id,
                                                user_id, cb, arg));
}

static int fy_profile_get(void *inst, int32_t side, const char *profile_id,
                          cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_PROFILE_GET, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->profile_get(fy->inner, side, profile_id,
                                                cb, arg));
}

static int fy_chat_open(void *inst, const char *new_id,
                        const char *patient_id, const char *professional_id,
                        int64_t now_us, cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_CHAT_OPEN, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->chat_open(fy->inner, new_id, patient_id,
                                              professional_id, now_us, cb,
                                              arg));
}

static int fy_chat_get(void *inst, const char *chat_id,
                       const struct cc_viewer *viewer, cc_store_cb cb,
                       void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_CHAT_GET, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->chat_get(fy->inner, chat_id, viewer, cb,
                                             arg));
}

static int fy_chat_list(void *inst, const struct cc_chat_query *q,
                        cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_CHAT_LIST, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->chat_list(fy->inner, q, cb, arg));
}

static int fy_message_append(void *inst, const struct cc_message *m,
                             cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_MESSAGE_APPEND, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->message_append(fy->inner, m, cb, arg));
}

static int fy_message_list(void *inst, const struct cc_message_query *q,
                           cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_MESSAGE_LIST, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->message_list(fy->inner, q, cb, arg));
}

static int fy_mark_read(void *inst, const char *chat_id, int32_t reader_side,
                        cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_MARK_READ, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->mark_read(fy->inner, chat_id,
                                              reader_side, cb, arg));
}

static int fy_message_purge(void *inst, int64_t before_us, uint32_t limit,
                            cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_MESSAGE_PURGE, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->message_purge(fy->inner, before_us,
                                                  limit, cb, arg));
}

static int fy_profile_owner_set(void *inst, int32_t side,
                                const char *profile_id, const char *user_id,
                                cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_PROFILE_OWNER_SET, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->profile_owner_set(fy->inner, side,
                                                      profile_id, user_id,
                                                      cb, arg));
}

static int fy_profile_name_set(void *inst, int32_t side,
                               const char *profile_id, const char *name,
                               cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_PROFILE_NAME_SET, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->profile_name_set(fy->inner, side,
                                                     profile_id, name, cb,
                                                     arg));
}

static int fy_mark_set(void *inst, const struct cc_mark_req *m,
                       cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_MARK_SET, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->mark_set(fy->inner, m, cb, arg));
}

static int fy_ticket_put(void *inst, const struct cc_ticket *t,
                         cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_TICKET_PUT, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->ticket_put(fy->inner, t, cb, arg));
}

static int fy_ticket_take(void *inst, const char *id, int64_t now_us,
                          cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_TICKET_TAKE, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->ticket_take(fy->inner, id, now_us, cb,
                                                arg));
}

static int fy_notify_claim(void *inst, const struct cc_notify_claim *q,
                           cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_NOTIFY_CLAIM, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->notify_claim(fy->inner, q, cb, arg));
}

static int fy_notify_done(void *inst, const struct cc_notify_outcome *o,
                          cc_store_cb cb, void *arg)
{
    struct fy *fy = inst;
    int rc;

    if (!pass(fy, OP_NOTIFY_DONE, &cb, &arg, &rc))
        return rc;
    return settle(cb, arg, fy->api->notify_done(fy->inner, o, cb, arg));
}

/* ------------------------------------------------- control socket */

/* Run one command (NUL-terminated, may be modified); the answer goes
 * into out (out_size bytes, NUL-terminated). */
static void command(struct fy *fy, char *cmd, char *out, size_t out_size)
{
    char *save = NULL, *verb = strtok_r(cmd, " \n", &save);
    char *op_s = strtok_r(NULL, " \n", &save);
    char *n_s = strtok_r(NULL, " \n", &save);
    char *kind_s = strtok_r(NULL, " \n", &save);
    char *end = NULL;
    unsigned long n = n_s ? strtoul(n_s, &end, 10) : 0;
    int op = op_s ? op_parse(op_s) : -1;
    size_t len;

    if (verb && strcmp(verb, "arm") == 0) {
        if (op < 0 || !end || *end || n < 1 || !kind_s ||
            kind_parse(kind_s) == K_NONE) {
            snprintf(out, out_size, "error: arm OP N KIND");
            return;
        }
        fy->armed_op = (enum fy_op)op;
        fy->armed_kind = kind_parse(kind_s);
        fy->left = n;
        snprintf(out, out_size, "ok");
    } else if (verb && strcmp(verb, "disarm") == 0) {
        fy->armed_kind = K_NONE;
        snprintf(out, out_size, "ok");
    } else if (verb && strcmp(verb, "status") == 0) {
        if (fy->armed_kind == K_NONE)
            len = (size_t)snprintf(out, out_size, "fired=%lu armed=- calls=",
                                   fy->fired);
        else
            len = (size_t)snprintf(out, out_size,
                                   "fired=%lu armed=%s/%lu/%s calls=",
                                   fy->fired, op_names[fy->armed_op],
                                   fy->left, kind_names[fy->armed_kind]);
        for (int i = 0; i < N_OPS && len < out_size; i++)
            len += (size_t)snprintf(out + len, out_size - len, "%s%s:%lu",
                                    i ? "," : "", op_names[i],
                                    fy->calls[i]);
    } else {
        snprintf(out, out_size, "error: arm, disarm or status");
    }
}

/* The control socket is readable: answer every datagram waiting. */
static void on_control(int fd, uint32_t events, void *arg)
{
    struct fy *fy = arg;
    struct sockaddr_un from;
    socklen_t from_len;
    char cmd[256], out[512];
    ssize_t n;

    for (;;) {
        from_len = sizeof from;
        n = recvfrom(fd, cmd, sizeof cmd - 1, 0, (struct sockaddr *)&from,
                     &from_len);
        if (n < 0)
            return; /* EAGAIN: all answered */
        cmd[n] = '\0';
        command(fy, cmd, out, sizeof out);
        if (from_len > sizeof(sa_family_t))
            sendto(fd, out, strlen(out), 0, (struct sockaddr *)&from,
                   from_len);
    }
}

/* Bind the control socket at fy->sock_path and watch it.  Returns CC_OK
 * or CC_E_FAIL after logging. */
static int control_open(struct fy *fy)
{
    struct sockaddr_un sa;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, fy->sock_path, strlen(fy->sock_path) + 1);
    fy->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    unlink(fy->sock_path);
    if (fy->fd < 0 ||
        bind(fy->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fy->host->log(fy->ctx, CC_LOG_ERROR, "faulty: %s: %s",
                      fy->sock_path, strerror(errno));
        return CC_E_FAIL;
    }
    fy->watch = fy->host->watch_fd(fy->ctx, fy->fd, CC_WATCH_READ,
                                   on_control, fy);
    return fy->watch ? CC_OK : CC_E_FAIL;
}

static void control_close(struct fy *fy)
{
    if (fy->watch)
        fy->host->watch_close(fy->watch);
    fy->watch = NULL;
    if (fy->fd >= 0) {
        close(fy->fd);
        unlink(fy->sock_path);
    }
    fy->fd = -1;
}

/* -------------------------------------------------------- lifecycle */

/* Load the inner plugin named by fault_inner and make its instance.
 * Returns CC_OK, or CC_E_INVAL after reporting why. */
static int inner_load(struct fy *fy, const char *path)
{
    cc_plugin_entry_fn entry;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);  /* never closed */
    const struct cc_plugin *d = NULL;

    if (!dl) {
        fy->host->cfg_error(fy->ctx, "fault_inner", "%s", dlerror());
        return CC_E_INVAL;
    }
    *(void **)&entry = dlsym(dl, CC_PLUGIN_ENTRY_SYMBOL);
    if (!entry || entry(&fy->inner_host, fy->host->abi_version, &d) !=
                      CC_OK || !d || !(d->kinds & CC_KIND_STORAGE) ||
        CC_ABI_MINOR_OF(d->abi_version) < FAULTY_ABI_MINOR) {
        fy->host->cfg_error(fy->ctx, "fault_inner", "%s: not a storage "
                            "plugin of ABI 1.%u or later", path,
                            (unsigned)FAULTY_ABI_MINOR);
        return CC_E_INVAL;
    }
    fy->desc = d;
    if (d->create(&fy->inner_host, fy->ctx, &fy->inner) != CC_OK)
        return CC_E_INVAL; /* it said why */
    fy->api = d->get_interface(fy->inner, CC_KIND_STORAGE);
    if (!fy->api || fy->api->struct_size <
                        offsetof(struct cc_storage_api, message_purge)) {
        d->destroy(fy->inner);
        fy->host->cfg_error(fy->ctx, "fault_inner", "%s: no storage table",
                            path);
        return CC_E_INVAL;
    }
    return CC_OK;
}

/* 1 when the inner plugin's table has member m, not NULL. */
#define INNER_HAS(fy, m)                                          \
    (CC_HAS_MEMBER((fy)->api, struct cc_storage_api, m) &&        \
     (fy)->api->m)

/* Our table: every member forwards; those added after 1.0 only when the
 * inner plugin has them (it is of our minor or later: it has those of
 * our minor). */
static void table_init(struct fy *fy)
{
    struct cc_storage_api *t = &fy->table;

    t->struct_size = sizeof *t;
    t->profile_put = fy_profile_put;
    t->profile_get = fy_profile_get;
    t->chat_open = fy_chat_open;
    t->chat_get = fy_chat_get;
    t->chat_list = fy_chat_list;
    t->message_append = fy_message_append;
    t->message_list = fy_message_list;
    t->mark_read = fy_mark_read;
    if (INNER_HAS(fy, message_purge))
        t->message_purge = fy_message_purge;
    if (INNER_HAS(fy, profile_owner_set))
        t->profile_owner_set = fy_profile_owner_set;
    if (INNER_HAS(fy, profile_name_set))
        t->profile_name_set = fy_profile_name_set;
    if (INNER_HAS(fy, mark_set))
        t->mark_set = fy_mark_set;
    if (INNER_HAS(fy, ticket_put))
        t->ticket_put = fy_ticket_put;
    if (INNER_HAS(fy, ticket_take))
        t->ticket_take = fy_ticket_take;
    if (INNER_HAS(fy, notify_claim))
        t->notify_claim = fy_notify_claim;
    if (INNER_HAS(fy, notify_done))
        t->notify_done = fy_notify_done;
}

static int fy_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct fy *fy = calloc(1, sizeof *fy);
    const char *inner = host->cfg_get(ctx, "fault_inner");
    const char *sock = host->cfg_get(ctx, "fault_socket");
    size_t n = host->struct_size < sizeof fy->inner_host
                   ? host->struct_size : sizeof fy->inner_host;

    if (!fy)
        return CC_E_NOMEM;
    fy->host = host;
    fy->ctx = ctx;
    fy->fd = -1;
    memcpy(&fy->inner_host, host, n);
    fy->inner_host.struct_size = (uint32_t)n;
    fy->inner_host.cfg_iter = inner_cfg_iter;
    fy->inner_host.cfg_get = inner_cfg_get;
    if (!inner) {
        host->cfg_error(ctx, NULL, "missing required key \"fault_inner\" "
                        "(the storage plugin to wrap)");
        goto fail;
    }
    if (sock && strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        host->cfg_error(ctx, "fault_socket", "path too long");
        goto fail;
    }
    if (inner_load(fy, inner) != CC_OK)
        goto fail;
    fy->sock_path = sock ? strdup(sock) : NULL;
    table_init(fy);
    *inst = fy;
    return CC_OK;
fail:
    free(fy);
    return CC_E_INVAL;
}

static int fy_start(void *inst)
{
    struct fy *fy = inst;
    int rc = fy->desc->start(fy->inner);

    if (rc == CC_OK && fy->sock_path)
        rc = control_open(fy);
    return rc;
}

static void inner_stopped(void *arg)
{
    struct fy *fy = arg;

    fy->inner_stopped = 1;
    maybe_stopped(fy);
}

/* The control socket closes at once; done() runs once the inner plugin
 * has stopped and the answers we posted have run. */
static void fy_stop(void *inst, cc_post_cb done, void *arg)
{
    struct fy *fy = inst;

    control_close(fy);
    fy->armed_kind = K_NONE;
    fy->done = done;
    fy->done_arg = arg;
    fy->stopping = 1;
    fy->inner_stopped = 0;
    fy->desc->stop(fy->inner, inner_stopped, fy);
}

static void fy_destroy(void *inst)
{
    struct fy *fy = inst;

    fy->desc->destroy(fy->inner);
    free(fy->sock_path);
    free(fy);
}

static const void *fy_get_interface(void *inst, uint32_t kind)
{
    struct fy *fy = inst;

    return kind == CC_KIND_STORAGE ? &fy->table : NULL;
}

static int fy_health(void *inst, char *why, size_t why_len)
{
    struct fy *fy = inst;

    if (!CC_HAS_MEMBER(fy->desc, struct cc_plugin, health) ||
        !fy->desc->health)
        return CC_OK;
    return fy->desc->health(fy->inner, why, why_len);
}

static void fy_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    struct fy *fy = inst;

    if (CC_HAS_MEMBER(fy->desc, struct cc_plugin, metrics) &&
        fy->desc->metrics)
        fy->desc->metrics(fy->inner, emit, arg);
}

static const struct cc_plugin fy_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = FAULTY_ABI,
    .min_host_minor = 0,
    .kinds = CC_KIND_STORAGE,
    .name = "faulty",
    .version = "1.0.0",
    .create = fy_create,
    .start = fy_start,
    .reload = NULL,
    .stop = fy_stop,
    .destroy = fy_destroy,
    .get_interface = fy_get_interface,
    .health = fy_health,
    .metrics = fy_metrics,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) ||
        host->struct_size < offsetof(struct cc_host_api, post) +
                                sizeof host->post)
        return CC_E_ABI;
    real_host = host;
    *out = &fy_plugin;
    return CC_OK;
}
