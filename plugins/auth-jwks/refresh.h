/*
 * refresh.h - the fetch thread of the jwks plugin: fetches and parses the
 * JWKS off the loop and hands each result to the loop thread through the
 * host's post().
 *
 * Owns one thread and its request flag, nothing else: it decides neither
 * when to refresh (the plugin does, on the loop thread, rate-limited) nor
 * which key set is current (the plugin swaps sets on the loop thread, so
 * verification needs no lock).
 */
#ifndef REFRESH_H
#define REFRESH_H

#include "fetch.h"
#include "jwk.h"

#include <carechat/plugin.h>

struct refresher;

/* A refresh result, on the loop thread: a new set (the callee owns it),
 * or NULL and why the fetch or the parse failed (borrowed). */
typedef void (*refresh_done_fn)(void *arg, struct jwk_set *set,
                                const char *error);

/* Fetch src and parse it for the algorithms in allowed, on the calling
 * thread: BLOCKS up to the source's timeout (see fetch_get()).  Returns
 * the set, or NULL with the reason in err.  Used by the thread, and once
 * by the plugin's start(), before the loop runs. */
struct jwk_set *refresh_once(const struct fetch_src *src, unsigned allowed,
                             const int *cancel, char *err, size_t err_size);

/* A refresher for src (borrowed; must outlive it) whose results go to
 * done(arg) on the loop thread.  No thread yet.  NULL when out of
 * memory. */
struct refresher *refresher_new(const struct cc_host_api *host,
                                cc_plugin_ctx *ctx,
                                const struct fetch_src *src,
                                unsigned allowed, refresh_done_fn done,
                                void *arg);

/* Start the thread (signals blocked in it: they belong to the loop).
 * Returns CC_OK or CC_E_FAIL. */
int refresher_start(struct refresher *r);

/* Ask for one refresh soon.  Requests made while one is pending merge
 * into it; a request made during a fetch gets a fetch of its own after
 * it.  Never blocks on I/O (takes a mutex the thread holds only
 * briefly).  Any thread. */
void refresher_request(struct refresher *r);

/* Stop the thread: a fetch under way is abandoned within 100 ms, then
 * stopped(arg) is posted to the loop, after every result the thread
 * posted.  Without a started thread, stopped(arg) runs at once.  Loop
 * thread. */
void refresher_stop(struct refresher *r, cc_post_cb stopped, void *arg);

/* Join the thread (after stopped() ran) and free r.  NULL is fine. */
void refresher_free(struct refresher *r);

#endif
