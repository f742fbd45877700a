/*
 * local.c - the fan-out plugin `local`: one process, no network.
 *
 * publish() hands the message straight back to the host's
 * fanout_deliver(), so order per chat is the publish order and nothing is
 * buffered.  subscribe/unsubscribe have nothing to do: every chat with a
 * local connection is, by definition, on this node.  It is also the
 * smallest complete example of a carechat plugin.
 */
#include <carechat/fanout.h>

#include <stdlib.h>

struct local {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
};

static int refuse_key(void *arg, const char *key, const char *value,
                      const char **reason)
{
    *reason = "unknown key (the local fan-out plugin has no settings)";
    return CC_E_INVAL;
}

static int local_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                        void **inst)
{
    struct local *l;

    if (host->cfg_iter(ctx, refuse_key, NULL) != CC_OK)
        return CC_E_INVAL;
    l = calloc(1, sizeof *l);
    if (!l)
        return CC_E_NOMEM;
    l->host = host;
    l->ctx = ctx;
    *inst = l;
    return CC_OK;
}

static int local_start(void *inst)
{
    return CC_OK;
}

static void local_stop(void *inst, cc_post_cb done, void *arg)
{
    done(arg);
}

static void local_destroy(void *inst)
{
    free(inst);
}

static int local_subscribe(void *inst, const char *chat_id)
{
    return CC_OK;
}

static int local_publish(void *inst, const char *chat_id, int64_t seq,
                         const char *payload, size_t len)
{
    struct local *l = inst;

    l->host->fanout_deliver(l->ctx, chat_id, seq, payload, len);
    return CC_OK;
}

static const struct cc_fanout_api local_api = {
    .struct_size = sizeof(struct cc_fanout_api),
    .subscribe = local_subscribe,
    .unsubscribe = local_subscribe,
    .publish = local_publish,
};

static const void *local_get_interface(void *inst, uint32_t kind)
{
    return kind == CC_KIND_FANOUT ? &local_api : NULL;
}

static const struct cc_plugin local_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_FANOUT,
    .name = "local",
    .version = "1.0.0",
    .create = local_create,
    .start = local_start,
    .reload = NULL,
    .stop = local_stop,
    .destroy = local_destroy,
    .get_interface = local_get_interface,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) ||
        host->struct_size < offsetof(struct cc_host_api, fanout_deliver) +
                                sizeof host->fanout_deliver)
        return CC_E_ABI;
    *out = &local_plugin;
    return CC_OK;
}
