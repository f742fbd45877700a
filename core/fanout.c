/*
 * fanout.c - the fan-out plugin, reached through one wrapper (see
 * fanout.h).
 */
#include "fanout.h"
#include "log.h"
#include "metrics.h"

#include <carechat/fanout.h>

static struct {
    const struct cc_fanout_api *api; /* NULL: not attached */
    void *inst;
} fo;

void cc_fanout_attach(const struct cc_fanout_api *api, void *inst)
{
    fo.api = api;
    fo.inst = inst;
}

void cc_fanout_detach(void)
{
    fo.api = NULL;
    fo.inst = NULL;
}

int cc_fanout_publish(const char *chat_id, int64_t seq, const char *payload,
                      size_t len)
{
    int rc = fo.api ? fo.api->publish(fo.inst, chat_id, seq, payload, len)
                    : CC_E_UNAVAIL;

    if (rc != CC_OK) {
        cc_metrics_publish_failed();
        cc_log(CC_LOG_ERROR, "fanout", "fan-out failed for a stored "
               "message in chat %s (%d); other nodes read it from storage",
               chat_id, rc);
    }
    return rc;
}

int cc_fanout_subscribe(const char *chat_id)
{
    int rc = fo.api ? fo.api->subscribe(fo.inst, chat_id) : CC_E_UNAVAIL;

    if (rc != CC_OK)
        cc_log(CC_LOG_WARN, "fanout", "could not subscribe chat %s; only "
               "local messages will arrive", chat_id);
    return rc;
}

int cc_fanout_unsubscribe(const char *chat_id)
{
    return fo.api ? fo.api->unsubscribe(fo.inst, chat_id) : CC_E_UNAVAIL;
}
