/*
 * sdnotify.h - telling the service manager where carechatd stands, through
 * systemd's sd_notify protocol (Type=notify): READY=1 once the listeners
 * accept, RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 when
 * shutdown begins, and WATCHDOG=1 pings at half of WATCHDOG_USEC when the
 * manager asks for them (sd_watchdog_enabled: WATCHDOG_USEC set and
 * WATCHDOG_PID, if set, ours).
 *
 * Owns the watchdog timer, on loop 0: a ping proves that loop 0 turns.
 * Loop 0 only.  Without NOTIFY_SOCKET every call does nothing, and a
 * build without libsystemd (configure --without-systemd, or no
 * libsystemd found) compiles these to no-ops.  Never blocks: a datagram
 * to a local socket.
 */
#ifndef CC_SDNOTIFY_H
#define CC_SDNOTIFY_H

struct event_base;

/* The listeners accept: send READY=1 and start the watchdog pings on
 * base when asked for.  Once, after cc_daemon_start succeeded. */
void cc_sd_notify_ready(struct event_base *base);

/* A SIGHUP reload begins (RELOADING=1 with MONOTONIC_USEC, as systemd
 * 253's Type=notify-reload wants) and ends (READY=1). */
void cc_sd_notify_reloading(void);
void cc_sd_notify_reloaded(void);

/* Shutdown begins: STOPPING=1.  The pings go on until cc_sd_notify_free,
 * since the shutdown grace period still runs loop 0. */
void cc_sd_notify_stopping(void);

/* Free the watchdog timer (before its event base is freed). */
void cc_sd_notify_free(void);

#endif
