/*
 * fetch.h - get a JWKS document: read a file, or GET an https:// URL
 * (certificate and host name verified) or an http:// URL on loopback,
 * on a private libevent loop, bounded in time and size.
 *
 * Owns the I/O of the jwks plugin and nothing else.  fetch_get() BLOCKS
 * for up to the timeout: call it on the fetch thread (or in start(),
 * before the server's loop runs), never on the loop thread.  A source is
 * immutable once made, so the fetch thread and the loop thread may share
 * it.  Never logs and never calls the host.
 */
#ifndef FETCH_H
#define FETCH_H

#include <stddef.h>

#define FETCH_BODY_MAX (256 * 1024) /* bytes; real JWKS are a few KiB */

struct fetch_src;

/* Check a jwks_url value: http or https, a host, no user name or
 * fragment; http only to a loopback host (127.0.0.0/8, ::1, localhost),
 * since keys fetched in the clear could be replaced on the way.  Returns
 * NULL, or why the URL is refused (static). */
const char *fetch_url_check(const char *url);

/* A source: the file path, or the url (checked) with ca_file (PEM CA
 * certificates to trust instead of the system's; NULL for the system
 * store) for https.  Every fetch gives up after timeout_ms.  Returns the
 * source, or NULL with the reason in err (the CA file cannot be loaded,
 * out of memory).  Reads ca_file: call at configuration time. */
struct fetch_src *fetch_new(const char *path, const char *url,
                            const char *ca_file, unsigned timeout_ms,
                            char *err, size_t err_size);

/* The URL or path, for log lines. */
const char *fetch_where(const struct fetch_src *s);

/* Get the document: a malloc'd, NUL-terminated copy (the caller frees)
 * with its length in *len, or NULL with the reason in err (timed out,
 * connection or TLS failure, certificate not trusted, status other than
 * 200, larger than FETCH_BODY_MAX, ...).  Blocks; gives up early when
 * *cancel becomes non-zero (polled every 100 ms; read atomically).
 * Thread-safe for one source used by several threads. */
char *fetch_get(const struct fetch_src *s, const int *cancel, size_t *len,
                char *err, size_t err_size);

/* Free a source.  NULL is fine. */
void fetch_free(struct fetch_src *s);

#endif
