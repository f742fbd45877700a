/*
 * carechat/plugin.h - the carechat plugin ABI: versioning, the host
 * services table and the plugin descriptor.
 *
 * This header is the promise carechat makes to plugin authors: a plugin
 * built against ABI major 1 loads in every later 1.x carechatd.  The rules
 * that keep the promise:
 *
 *  - A shared object exports exactly one symbol, cc_plugin_entry().  Build
 *    with -fvisibility=hidden and mark the entry with CC_PLUGIN_EXPORT.
 *  - Every struct that crosses the boundary begins with its own size
 *    (uint32_t struct_size).  Structs and tables only grow at the end.  A
 *    member added in minor N is present iff struct_size covers it; test
 *    with CC_HAS_MEMBER() before use, never assume.
 *  - Only plain C crosses the boundary: fixed-width integers, size_t byte
 *    counts, const char * strings (NUL-terminated unless a length is
 *    given) and opaque handles.  No libevent, jansson or OpenSSL types.
 *  - Each side frees what it allocated.  Strings handed to a callback are
 *    borrowed until the callback returns; copy them to keep them.
 *  - All host services are called on the loop thread, except post(), which
 *    any thread may call.
 *
 * Changing this file: append only.  Bump CC_ABI_MINOR when a member is
 * appended; CC_ABI_MAJOR only for a break, which we do not do in 1.x.
 *
 * History:
 *   1.0  first release.
 *   1.1  struct cc_chat_query (storage.h) gained after_updated_us and
 *        after_id, for the chat list's previous page.  The host sends
 *        such a query only to storage plugins built for 1.1 or later;
 *        1.0 plugins load and work as before (no previous link).
 *   1.2  Resume and idempotent sends (storage.h): struct cc_message
 *        gained client_id, struct cc_message_query after_id and struct
 *        cc_store_result duplicate; the host sets the first two only
 *        for storage plugins built for 1.2 or later (with older ones a
 *        client's client_id and since are answered with an error).
 *        struct cc_host_api gained fanout_resync, for fan-out plugins
 *        that may have missed messages (a link that was down).
 *   1.3  Operations (issue 15): struct cc_plugin gained health() (for
 *        GET /readyz) and metrics() (for GET /metrics); struct
 *        cc_storage_api gained message_purge() (retention).  All three
 *        may be NULL; the host calls them only on plugins built for 1.3
 *        or later (struct_size covers them).
 *   1.4  Profiles bound to users, tickets, the closed loop (issues 25,
 *        26).  A new kind, CC_KIND_NOTIFY (carechat/notify.h).  In
 *        carechat/storage.h: struct cc_message gained priority and
 *        notify_due_us, struct cc_chat the read and delivered marks,
 *        struct cc_store_result owner, mark, ticket and notifications;
 *        struct cc_storage_api gained profile_owner_set, mark_set,
 *        ticket_put, ticket_take, notify_claim and notify_done.  The host
 *        sends the new members, and calls the new functions, only to
 *        storage plugins built for 1.4 or later; with older ones
 *        profiles are not bound, tickets, receipts and priorities are
 *        off and a [notify] section is refused.
 */
#ifndef CARECHAT_PLUGIN_H
#define CARECHAT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CC_ABI_MAJOR 1
#define CC_ABI_MINOR 4
#define CC_ABI_VERSION (((uint32_t)CC_ABI_MAJOR << 16) | CC_ABI_MINOR)
#define CC_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define CC_ABI_MINOR_OF(v) ((uint32_t)(v) & 0xffffu)

#if defined(__GNUC__) || defined(__clang__)
#define CC_PLUGIN_EXPORT __attribute__((visibility("default")))
#define CC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CC_PLUGIN_EXPORT
#define CC_PRINTF(fmt, args)
#endif

/* True when the struct pointed to by p (which begins with struct_size) is
 * large enough to hold member m. */
#define CC_HAS_MEMBER(p, type, m) \
    ((p)->struct_size >= offsetof(type, m) + sizeof(((type *)0)->m))

/* Result codes used everywhere in the ABI: 0 is success, negative is an
 * error.  New codes may be added; treat an unknown negative as CC_E_FAIL. */
#define CC_OK 0
#define CC_E_FAIL (-1)      /* generic failure */
#define CC_E_NOMEM (-2)     /* out of memory */
#define CC_E_INVAL (-3)     /* bad argument or bad configuration */
#define CC_E_ABI (-4)       /* incompatible ABI version */
#define CC_E_BUSY (-5)      /* queue full: try again later */
#define CC_E_NOTFOUND (-6)  /* the object does not exist */
#define CC_E_CONFLICT (-7)  /* the object exists in a conflicting form */
#define CC_E_UNAVAIL (-8)   /* the backend is down (e.g. database gone) */
#define CC_E_NOTSUP (-9)    /* operation not supported by this plugin */

/* Log levels for host->log. */
#define CC_LOG_ERROR 0
#define CC_LOG_WARN 1
#define CC_LOG_INFO 2
#define CC_LOG_DEBUG 3

/* Interface kinds a plugin can provide (bit values, see kinds below). */
#define CC_KIND_STORAGE 1u
#define CC_KIND_AUTH 2u
#define CC_KIND_FANOUT 4u
#define CC_KIND_NOTIFY 8u   /* since 1.4: carechat/notify.h */

/* fd watch event bits. */
#define CC_WATCH_READ 1u
#define CC_WATCH_WRITE 2u

/* Opaque handles owned by the host. */
typedef struct cc_plugin_ctx cc_plugin_ctx; /* one per plugin instance */
typedef struct cc_watch cc_watch;           /* an fd watch on the loop */
typedef struct cc_timer cc_timer;           /* a timer on the loop */
typedef struct cc_auth_req cc_auth_req;     /* one authentication attempt */

typedef void (*cc_fd_cb)(int fd, uint32_t events, void *arg);
typedef void (*cc_timer_cb)(void *arg);
typedef void (*cc_post_cb)(void *arg);

/* Metric types for cc_metric_cb (Prometheus' counter and gauge). */
#define CC_METRIC_COUNTER 0
#define CC_METRIC_GAUGE 1

/* Since ABI 1.3: one sample for GET /metrics.  name is
 * [a-z_][a-z0-9_]* without a prefix (the host adds "carechat_plugin_"
 * and the labels kind="..." and plugin="..."); a counter's name ends in
 * "_total".  help is one line.  Both borrowed for the call. */
typedef void (*cc_metric_cb)(void *arg, const char *name, const char *help,
                             int type, double value);

/* Called once per key of the plugin's config section (the host-owned key
 * "plugin" excluded).  Return CC_OK to accept the key; return an error and
 * set *reason to a static string to refuse it (unknown key, bad value):
 * the host then reports "file:line: [section] key: reason" and the daemon
 * does not start. */
typedef int (*cc_cfg_cb)(void *arg, const char *key, const char *value,
                         const char **reason);

/*
 * Services the host offers to plugins.  Valid from the entry call until the
 * process exits.  Every function takes the caller's cc_plugin_ctx (received
 * by create()) so the host can attribute log lines and config lookups.
 */
struct cc_host_api {
    uint32_t struct_size;
    uint32_t abi_version; /* the host's CC_ABI_VERSION */

    /* Log one line, prefixed by the plugin's name, at a CC_LOG_* level.
     * Never pass tokens or secrets. */
    void (*log)(cc_plugin_ctx *ctx, int level, const char *fmt, ...)
        CC_PRINTF(3, 4);

    /* The value of key in the plugin's own config section, or NULL.
     * Borrowed: valid until the plugin is destroyed. */
    const char *(*cfg_get)(cc_plugin_ctx *ctx, const char *key);

    /* Call cb for every key of the plugin's section, in file order.
     * Returns CC_OK, or the first error cb returned (already reported). */
    int (*cfg_iter)(cc_plugin_ctx *ctx, cc_cfg_cb cb, void *arg);

    /* Report a configuration error found after iterating (a missing key,
     * keys that conflict, a file that cannot be read) as
     * "file:line: [section] key: message", with the line of key, or of
     * the section header when key is NULL or absent.  create() then
     * returns CC_E_INVAL. */
    void (*cfg_error)(cc_plugin_ctx *ctx, const char *key,
                      const char *fmt, ...) CC_PRINTF(3, 4);

    /* Clocks: monotonic nanoseconds, and wall-clock microseconds since the
     * Unix epoch. */
    uint64_t (*now_mono_ns)(void);
    int64_t (*now_real_us)(void);

    /* Fill buf with n cryptographically secure random bytes. */
    int (*random_bytes)(void *buf, size_t n);

    /* Watch fd for CC_WATCH_* events; cb runs on the loop thread until
     * watch_close().  watch_set changes the events of interest (0 pauses). */
    cc_watch *(*watch_fd)(cc_plugin_ctx *ctx, int fd, uint32_t events,
                          cc_fd_cb cb, void *arg);
    int (*watch_set)(cc_watch *w, uint32_t events);
    void (*watch_close)(cc_watch *w);

    /* Run cb after ms milliseconds, again every ms if repeat is nonzero,
     * until timer_cancel().  A one-shot timer must still be cancelled (it
     * is freed by timer_cancel, which is safe to call from its callback). */
    cc_timer *(*timer_add)(cc_plugin_ctx *ctx, uint64_t ms, int repeat,
                           cc_timer_cb cb, void *arg);
    void (*timer_cancel)(cc_timer *t);

    /* Thread-safe: run cb(arg) on the loop thread soon.  Callbacks posted
     * from one thread run in the order they were posted. */
    int (*post)(cc_plugin_ctx *ctx, cc_post_cb cb, void *arg);

    /* Auth results (see carechat/auth.h).  Valid on a cc_auth_req during
     * authenticate(), or after auth_lookup() for a pending request. */
    int (*auth_set_user)(cc_auth_req *req, const char *user_id);
    int (*auth_set_patient)(cc_auth_req *req, const char *patient_id);
    int (*auth_set_professional)(cc_auth_req *req,
                                 const char *professional_id);
    int (*auth_set_expiry)(cc_auth_req *req, int64_t unix_s);
    int (*auth_set_admin)(cc_auth_req *req, int is_admin);
    /* Why the token was refused; safe to show the client (no secrets). */
    int (*auth_set_error)(cc_auth_req *req, const char *message);
    /* For CC_AUTH_PENDING: find the request again by id (NULL when its
     * connection is gone), set results, then complete it with a
     * CC_AUTH_OK / CC_AUTH_DENY status. */
    cc_auth_req *(*auth_lookup)(cc_plugin_ctx *ctx, uint64_t req_id);
    void (*auth_complete)(cc_plugin_ctx *ctx, uint64_t req_id, int status);

    /* Fan-out: hand a message published for chat_id (by any node) to the
     * local connections of that chat.  payload is the encoded message
     * object exactly as publish() received it; seq is its per-chat order. */
    void (*fanout_deliver)(cc_plugin_ctx *ctx, const char *chat_id,
                           int64_t seq, const char *payload, size_t len);

    /* Since ABI 1.2 (test with CC_HAS_MEMBER before calling).  Fan-out:
     * this node may have missed messages published for chat_id (NULL:
     * for any chat), say because the plugin's link to its broker was
     * down or a subscription was lost.  The host reads from storage what
     * the node's connections have not been sent and delivers it to
     * them, in order, once; later deliveries of those messages are
     * ignored.  Call it when the cause has ended (reconnected,
     * resubscribed).  Loop thread; cheap when nothing was missed. */
    void (*fanout_resync)(cc_plugin_ctx *ctx, const char *chat_id);
};

/*
 * What a plugin's entry point returns: a static, read-only descriptor.
 */
struct cc_plugin {
    uint32_t struct_size;
    uint32_t abi_version;    /* CC_ABI_VERSION the plugin was built with */
    uint32_t min_host_minor; /* oldest host minor the plugin can run on */
    uint32_t kinds;          /* CC_KIND_* bits the plugin provides */
    const char *name;        /* short name, e.g. "sqlite" */
    const char *version;     /* the plugin's own version string */

    /* Create an instance: read and validate the config section (through
     * host->cfg_iter), allocate state.  No I/O that can block for long.
     * Returns CC_OK and sets *inst, or an error after logging why. */
    int (*create)(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                  void **inst);
    /* Open connections, start threads.  May block briefly at startup. */
    int (*start)(void *inst);
    /* Re-read what can change at run time (SIGHUP).  May be NULL. */
    int (*reload)(void *inst);
    /* Finish pending work, then call done(arg) exactly once, possibly
     * from within stop().  No new requests arrive after stop(). */
    void (*stop)(void *inst, cc_post_cb done, void *arg);
    /* Free everything.  Called after stop completed. */
    void (*destroy)(void *inst);
    /* The interface table for kind (CC_KIND_*), or NULL.  The table is
     * one of carechat/storage.h, auth.h, fanout.h, notify.h and begins
     * with its struct_size. */
    const void *(*get_interface)(void *inst, uint32_t kind);

    /* Since ABI 1.3 (may be NULL). */
    /* Can the plugin serve now?  CC_OK, or CC_E_UNAVAIL with a short
     * reason in why (NUL-terminated, at most why_len bytes; no secrets),
     * e.g. "database unreachable".  Answer from state the plugin keeps:
     * loop thread, must not block.  GET /readyz asks it. */
    int (*health)(void *inst, char *why, size_t why_len);
    /* Emit the plugin's own samples through emit (loop thread, called
     * for each scrape of GET /metrics; must not block). */
    void (*metrics)(void *inst, cc_metric_cb emit, void *arg);
};

/* The one symbol a plugin exports.  Called once, on the loop thread, with
 * the host's table and ABI version.  Return CC_OK and set *out, or
 * CC_E_ABI when host_abi is not one the plugin can use. */
#define CC_PLUGIN_ENTRY_SYMBOL "cc_plugin_entry"
typedef int (*cc_plugin_entry_fn)(const struct cc_host_api *host,
                                  uint32_t host_abi,
                                  const struct cc_plugin **out);

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out);

/* The check every plugin's entry should make first. */
#define CC_ABI_COMPATIBLE(host_abi, min_minor)                    \
    (CC_ABI_MAJOR_OF(host_abi) == CC_ABI_MAJOR &&                 \
     CC_ABI_MINOR_OF(host_abi) + 1u > (uint32_t)(min_minor))

#ifdef __cplusplus
}
#endif

#endif /* CARECHAT_PLUGIN_H */
