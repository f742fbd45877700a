/*
 * host.h - the host side of the plugin ABI: the services table that
 * plugins call (struct cc_host_api) implemented on the core's libevent
 * loop, plugin contexts, and loading plugins from shared objects.
 *
 * Loop thread only, except what the ABI marks thread-safe (post).
 */
#ifndef CC_HOST_H
#define CC_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <carechat/plugin.h>
#include "uuid.h"

struct event_base;
struct cc_conf;
struct cc_conf_section;

#define CC_USER_ID_MAX 128

/* Who a token says the caller is.  Profile ids are canonical UUIDs or "";
 * the host setters validate what plugins hand in. */
#define CC_NAME_MAX 201        /* a display name, UTF-8, with its NUL */

struct cc_principal {
    char user_id[CC_USER_ID_MAX];
    char patient_id[CC_UUID_LEN + 1];
    char professional_id[CC_UUID_LEN + 1];
    int64_t expires_at;   /* token expiry, unix seconds; 0 when none */
    int is_admin;
    char name[CC_NAME_MAX]; /* the token's display name; "" when none */
};

/* One authentication attempt (the opaque cc_auth_req of the ABI). */
struct cc_auth_req {
    uint64_t id;
    struct cc_principal principal;
    char error[160];      /* why the token was refused, client-safe */
};

/* Reset r for a new attempt with the given id. */
void cc_auth_req_init(struct cc_auth_req *r, uint64_t id);

/* Hooks the core installs for the services that reach into it (auth
 * results, fan-out delivery); tests may leave them NULL. */
struct cc_host_hooks {
    cc_auth_req *(*auth_lookup)(uint64_t req_id);
    void (*auth_complete)(uint64_t req_id, int status);
    void (*fanout_resync)(const char *chat_id);
    void (*fanout_deliver)(const char *chat_id, int64_t seq,
                           const char *payload, size_t len);
    /* 1 when key of section is the host's, not the plugin's (cfg_iter
     * leaves it out); NULL: only "plugin" is. */
    int (*host_key)(const char *section, const char *key);
};

/* Bind the services to base; call once, after evthread_use_pthreads()
 * and before any plugin is created.  hooks may be NULL. */
int cc_host_init(struct event_base *base, const struct cc_host_hooks *hooks);
const struct cc_host_api *cc_host_api_table(void);

/* Run posts still queued, then release the loop's resources; call before
 * freeing the event base (plugins already unloaded). */
void cc_host_shutdown(void);

/* A loaded, created plugin instance. */
struct cc_plugin_inst {
    const struct cc_plugin *desc;
    cc_plugin_ctx *ctx;
    void *inst;
    const void *iface;  /* the table for the kind it was loaded as */
    char *path;
};

/* Resolve a `plugin =` value: a name becomes
 * plugin_dir/<kind>-<name>.so; a value containing '/' is a path. */
char *cc_plugin_path(const char *plugin_dir, const char *kind_name,
                     const char *value);

/* dlopen path, check the entry, ABI version, descriptor size and kind,
 * then create the instance with the config section.  Returns 0, or -1
 * with "path: reason" in err.  Never dlcloses a plugin it accepted. */
int cc_plugin_load(const char *path, uint32_t kind,
                   const struct cc_conf *conf,
                   const struct cc_conf_section *section,
                   struct cc_plugin_inst *out, char *err, size_t err_size);

/* Start the instance; -1 with "path: reason" in err on failure. */
int cc_plugin_start(struct cc_plugin_inst *p, char *err, size_t err_size);

/* Stop (running the loop until the plugin's completion) and destroy. */
void cc_plugin_unload(struct cc_plugin_inst *p);

#endif
