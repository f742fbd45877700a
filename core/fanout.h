/*
 * fanout.h - the host's one way to the fan-out plugin: publish a stored
 * message, subscribe and unsubscribe a chat.
 *
 * Owns the plugin's table and instance between attach (it started) and
 * detach (before it stops): a publish after that is refused, never
 * passed to a plugin that has gone.  A refused publish is counted
 * (metrics.h) and logged at most once a second with a count: the
 * message is stored, and every node's order (order.h) fills the gap
 * from storage with the chat's next message or resync.  Loop 0 only.
 */
#ifndef CC_CORE_FANOUT_H
#define CC_CORE_FANOUT_H

#include <stddef.h>
#include <stdint.h>

struct cc_fanout_api;

void cc_fanout_attach(const struct cc_fanout_api *api, void *inst);
void cc_fanout_detach(void);

/* Carry a stored message (payload: its encoded {"message": ...} object,
 * borrowed for the call) to every node's subscribers of chat_id.
 * Returns CC_OK or the plugin's (or CC_E_UNAVAIL when detached). */
int cc_fanout_publish(const char *chat_id, int64_t seq, const char *payload,
                      size_t len);

/* Start / stop receiving chat_id's messages on this node.  Returns CC_OK
 * or the plugin's error (logged here), CC_E_UNAVAIL when detached. */
int cc_fanout_subscribe(const char *chat_id);
int cc_fanout_unsubscribe(const char *chat_id);

#endif
