/*
 * testplugin.c - plugins for the ABI tests, one per VARIANT:
 *   VARIANT_GOOD       a fan-out and storage plugin built against the
 *                      frozen 1.0 headers (tests/abi/v1_0), or 1.1, 1.2,
 *                      1.3 (v1_1 ...); must load as either kind
 *   VARIANT_BADMAJOR   claims ABI 2.0; must be refused
 *   VARIANT_NOENTRY    exports no cc_plugin_entry; must be refused
 *   VARIANT_NEEDMINOR  requires host minor 99; must be refused
 *   VARIANT_SMALL      descriptor too small; must be refused
 */
#include <carechat/fanout.h>
#include <carechat/storage.h>

#include <stddef.h>

static int t_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                    void **inst)
{
    *inst = (void *)host;
    return CC_OK;
}

static int t_start(void *inst) { return CC_OK; }
static void t_stop(void *inst, cc_post_cb done, void *arg) { done(arg); }
static void t_destroy(void *inst) {}
static int t_sub(void *inst, const char *chat) { return CC_OK; }
static int t_pub(void *inst, const char *chat, int64_t seq, const char *p,
                 size_t n)
{
    return CC_OK;
}

static const struct cc_fanout_api t_api = {
    .struct_size = sizeof(struct cc_fanout_api),
    .subscribe = t_sub,
    .unsubscribe = t_sub,
    .publish = t_pub,
};

/* A storage table as its headers' version has it: every call refused. */
static int t_put(void *inst, int32_t side, const char *id, const char *user,
                 cc_store_cb cb, void *arg)
{
    return CC_E_NOTSUP;
}

static const struct cc_storage_api t_storage = {
    .struct_size = sizeof(struct cc_storage_api),
    .profile_put = t_put,
};

static const void *t_iface(void *inst, uint32_t kind)
{
    return kind == CC_KIND_FANOUT    ? (const void *)&t_api
         : kind == CC_KIND_STORAGE ? (const void *)&t_storage
                                   : NULL;
}

#if defined(VARIANT_BADMAJOR)
#define T_ABI ((2u << 16) | 0u)
#else
#define T_ABI CC_ABI_VERSION
#endif
#if defined(VARIANT_NEEDMINOR)
#define T_MINOR 99
#else
#define T_MINOR 0
#endif
#if defined(VARIANT_SMALL)
#define T_SIZE offsetof(struct cc_plugin, create)
#else
#define T_SIZE sizeof(struct cc_plugin)
#endif

static const struct cc_plugin t_plugin = {
    .struct_size = T_SIZE,
    .abi_version = T_ABI,
    .min_host_minor = T_MINOR,
    .kinds = CC_KIND_FANOUT | CC_KIND_STORAGE,
    .name = "abitest",
    .version = "0",
    .create = t_create,
    .start = t_start,
    .stop = t_stop,
    .destroy = t_destroy,
    .get_interface = t_iface,
};

#if defined(VARIANT_NOENTRY)
CC_PLUGIN_EXPORT int cc_plugin_entry_misspelled(const struct cc_host_api *h,
                                                uint32_t abi,
                                                const struct cc_plugin **out);
CC_PLUGIN_EXPORT int cc_plugin_entry_misspelled(const struct cc_host_api *h,
                                                uint32_t abi,
                                                const struct cc_plugin **out)
#else
CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *h, uint32_t abi,
                                     const struct cc_plugin **out)
#endif
{
    *out = &t_plugin;
    return CC_OK;
}
