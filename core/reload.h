/*
 * reload.h - SIGHUP: re-read the configuration file and apply what can
 * change while running, reload the TLS certificate, call the plugins'
 * reload().
 *
 * Applied at once: log_level, allowed_origins (the next handshake) and
 * every [server] limit but threads and chat_cache (each read where it is
 * used: a new connection, the next message, the next timer).  Everything
 * else (listen, tls_listen, the tls_* files and policy, plugin_dir, demo,
 * demo_dir, threads, chat_cache and the [storage], [auth], [fanout] and
 * [audit] sections) keeps its running value, and one log line names the keys
 * that changed and need a restart.  A file that does not load, or whose
 * section names or [server] carechatd -t would refuse (the same
 * cc_server_parse), changes nothing at all: the error is logged with
 * file:line.
 *
 * Loop 0 only (the signal event).  Blocks for the file read only.
 */
#ifndef CC_RELOAD_H
#define CC_RELOAD_H

struct cc_server;

/* The whole SIGHUP sequence, with sd_notify RELOADING/READY around it. */
void cc_reload(struct cc_server *s);

/* The configuration part: 0 applied (maybe with keys left for a
 * restart), -1 the file was refused and nothing changed (logged). */
int cc_reload_settings(struct cc_server *s);

#endif
