/*
 * resume.h - a WebSocket that joins with ?since=<message id>: before any
 * live message it is sent every message of its chat stored after that
 * one, oldest first, read from storage a page at a time as its socket
 * drains (never the whole backlog in memory, never cut off by
 * output_high_water), with no gap and no duplicate at the seam with live
 * delivery.
 *
 * The seam: the connection joins its chat before the first page is
 * read, so every live frame from then on reaches it.  While it catches
 * up those frames are not sent, only the highest seq among them is
 * noted, and pages are read until storage has nothing more and the last
 * page reached that seq.  From then on the session sends a frame only
 * when its seq is above the last one it sent (session.c), which also
 * drops the live copy of a message a page already carried.  When
 * nothing was stored after since, the seq of since itself is read (the
 * chat's newest message), so that a live copy of a message the client
 * had before it reconnected, still on its way here from the node that
 * stored it, is not sent again either.
 *
 * Owns a connection's catch-up state.  Loop 0 only (storage is called
 * there); the connection moves to a worker loop once caught up.
 */
#ifndef CC_RESUME_H
#define CC_RESUME_H

#include <stdint.h>

struct cc_conn;
struct cc_resume;

/* Messages read per page; the next page is read once the connection's
 * output has been written (the socket drained). */
#define CC_RESUME_PAGE 100

/* Start catching c (joined, open) up after message since (canonical
 * UUID); *slot (the session's) holds the handle until the session calls
 * cc_resume_free, which it does when cc_session_resumed() says c is
 * caught up, or when c goes. */
void cc_resume_start(struct cc_resume **slot, struct cc_conn *c,
                     const char *since);

/* A live frame of seq reached c while it catches up: noted, not sent. */
void cc_resume_live(struct cc_resume *r, int64_t seq);

/* c's output has drained: read the next page if one is due. */
void cc_resume_on_write(struct cc_resume *r);

/* c is going away: forget r (a page still being read is dropped when it
 * comes back). */
void cc_resume_free(struct cc_resume *r);

#endif
