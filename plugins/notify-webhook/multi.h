/*
 * multi.h - libcurl's multi interface on the host's event loop, through
 * the plugin ABI's services only (host->watch_fd / watch_set /
 * watch_close for curl's sockets, host->timer_add / timer_cancel for its
 * timeout): no libevent type crosses the ABI, and no call blocks the
 * loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to call it back (CURLMOPT_TIMERFUNCTION); we answer each event
 * with curl_multi_socket_action() and then read what finished with
 * curl_multi_info_read().  Name lookups run in libcurl's threaded
 * resolver (or c-ares), whose completion also arrives as a socket or a
 * timeout: with either, nothing waits on DNS on the loop
 * (wh_multi_async_dns says whether this libcurl has one).
 *
 * Owns the CURLM handle, one watch per socket curl uses and one timer.
 * The easy handles stay the caller's.  Loop thread only.
 */
#ifndef WH_MULTI_H
#define WH_MULTI_H

#include <carechat/plugin.h>

#include <curl/curl.h>

struct wh_multi;

/* A transfer ended (result CURLE_OK: an HTTP answer came, whatever its
 * status).  easy is already out of the multi handle: the callee may
 * clean it up, add new transfers, or remove others. */
typedef void (*wh_multi_done_cb)(void *arg, CURL *easy, CURLcode result);

/* A multi handle driven on ctx's loop; done(arg, ...) once per transfer
 * that ends by itself.  NULL when libcurl cannot make one. */
struct wh_multi *wh_multi_new(const struct cc_host_api *host,
                              cc_plugin_ctx *ctx, wh_multi_done_cb done,
                              void *arg);

/* Start easy (set up by the caller).  It only ends later, through done,
 * never inside this call.  Returns 0, or -1 (easy not added). */
int wh_multi_add(struct wh_multi *m, CURL *easy);

/* Abort easy, which was added and has not ended: done is not called for
 * it.  Its sockets are released. */
void wh_multi_remove(struct wh_multi *m, CURL *easy);

/* Free m: every transfer must have ended or been removed.  Closes the
 * connections curl kept for reuse and their watches. */
void wh_multi_free(struct wh_multi *m);

/* 1 when this libcurl resolves names without blocking the caller
 * (threaded resolver or c-ares: CURL_VERSION_ASYNCHDNS). */
int wh_multi_async_dns(void);

#endif
