/*
 * ticket.h - WebSocket tickets: how a browser opens a chat without
 * putting its long-lived token in a URL (proxies and browser history
 * keep URLs; a browser's WebSocket cannot send an Authorization header).
 *
 *   POST /chat/ws-ticket/  (Bearer token)  ->  {"ticket": "...",
 *                                               "expires_in": 30}
 *   GET /ws/chat/{id}/?ticket=...          ->  the token's principal
 *
 * A ticket is 32 random bytes (base64url), good for one WebSocket, once,
 * within [server] ws_ticket_lifetime (30 s by default), for the principal
 * of the token that asked for it; that token's expiry still closes the
 * socket (4408).  Tickets live
 * in storage (ABI 1.4 ticket_put / ticket_take), so one asked of one node
 * opens a socket on any other behind the same balancer, and a take is
 * atomic there: a ticket used twice, on any node, opens one socket.
 * Storage keeps the SHA-256 of a ticket, never the ticket itself.
 *
 * Owns the ticket's form, digest and lifetime.  Loop 0 only.
 */
#ifndef CC_TICKET_H
#define CC_TICKET_H

#include <stddef.h>

struct cc_principal;

#define CC_TICKET_LEN 43   /* base64url of 32 bytes */

/* An issued ticket (status CC_OK, ticket NUL-terminated) or not (a
 * CC_E_* status; CC_E_NOTSUP: storage keeps no tickets). */
typedef void (*cc_ticket_issued_fn)(void *arg, int status,
                                    const char *ticket);

/* Issue a ticket for who, good for ws_ticket_lifetime.  issued runs
 * exactly once, never inside this call. */
void cc_ticket_issue(const struct cc_principal *who,
                     cc_ticket_issued_fn issued, void *arg);

/* A redeemed ticket: status CC_OK and who (borrowed for the call), or
 * CC_E_NOTFOUND (no such ticket, used, expired) or another CC_E_*. */
typedef void (*cc_ticket_taken_fn)(void *arg, int status,
                                   const struct cc_principal *who);

/* Redeem ticket (as the client sent it, len bytes).  taken runs exactly
 * once, never inside this call. */
void cc_ticket_redeem(const char *ticket, size_t len,
                      cc_ticket_taken_fn taken, void *arg);

#endif
