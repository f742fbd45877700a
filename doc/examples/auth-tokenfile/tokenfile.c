/*
 * tokenfile.c - an example carechat auth plugin: it accepts the bearer
 * tokens listed in a file.  The smallest complete auth plugin, written
 * the way doc/plugin-guide.md explains and built out of tree against the
 * installed headers only:
 *
 *     cc $(pkg-config --cflags carechat-plugin) -fPIC -shared \
 *        -o auth-tokenfile.so tokenfile.c
 *
 * carechat.conf:
 *
 *     [auth]
 *     plugin = tokenfile         (as <plugin_dir>/auth-tokenfile.so; or
 *                                 a path to the .so)
 *     tokens_file = /etc/carechat/tokens
 *
 * The file has one token per line with the principal it stands for:
 *
 *     TOKEN USER_ID [patient=UUID] [professional=UUID] [admin]
 *
 * Blank lines and lines starting with '#' are ignored.  Good for tests,
 * demos and kiosks; tokens that never expire are no substitute for an
 * identity provider (see the jwks plugin for that).
 */
#include <carechat/auth.h>
#include <carechat/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TF_LINE_MAX 1024 /* longest line of the tokens file */

/* One line of the tokens file.  All strings are owned. */
struct entry {
    char *token;         /* wiped before it is freed */
    size_t token_len;
    char *user;
    char *patient;       /* NULL when the line names none */
    char *professional;  /* NULL when the line names none */
    int admin;
    struct entry *next;
};

/* The plugin instance: one per [auth] section. */
struct tokenfile {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    const char *path;       /* borrowed from the host, see create() */
    struct entry *entries;
};

/* ------------------------------------------------------ the token file */

static void free_entries(struct entry *e)
{
    while (e) {
        struct entry *next = e->next;

        if (e->token)
            memset(e->token, 0, e->token_len); /* a secret: wipe it */
        free(e->token);
        free(e->user);
        free(e->patient);
        free(e->professional);
        free(e);
        e = next;
    }
}

/* Parse one line's words (after the token and user) into e.  Returns
 * NULL or why the line is refused.  The ids are checked by the host when
 * they are set: a bad UUID there refuses the token at sign-in. */
static const char *parse_extras(struct entry *e, char **save)
{
    char *w;

    while ((w = strtok_r(NULL, " \t\r\n", save)) != NULL) {
        if (strncmp(w, "patient=", 8) == 0 && !e->patient)
            e->patient = strdup(w + 8);
        else if (strncmp(w, "professional=", 13) == 0 && !e->professional)
            e->professional = strdup(w + 13);
        else if (strcmp(w, "admin") == 0)
            e->admin = 1;
        else
            return "expected patient=UUID, professional=UUID or admin";
    }
    return NULL;
}

/* Parse one line into a new entry (*out), or leave *out NULL for a blank
 * or comment line.  Returns NULL or why the line is refused. */
static const char *parse_line(char *line, struct entry **out)
{
    char *save = NULL, *token = strtok_r(line, " \t\r\n", &save);
    char *user = token ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    struct entry *e;
    const char *why;

    *out = NULL;
    if (!token || token[0] == '#')
        return NULL;
    if (!user)
        return "expected TOKEN USER_ID [patient=UUID] "
               "[professional=UUID] [admin]";
    e = calloc(1, sizeof *e);
    if (!e)
        return "out of memory";
    e->token = strdup(token);
    e->token_len = strlen(token);
    e->user = strdup(user);
    why = parse_extras(e, &save);
    if (!why && (!e->token || !e->user))
        why = "out of memory";
    if (why) {
        free_entries(e);
        return why;
    }
    *out = e;
    return NULL;
}

/* Read the whole tokens file into t->entries.  On a bad line, report it
 * through the host (so the daemon says which file and line) and return
 * CC_E_INVAL.  Runs in create(), before the server serves anyone, so a
 * blocking read is fine here. */
static int read_tokens(struct tokenfile *t)
{
    FILE *f = fopen(t->path, "r");
    char line[TF_LINE_MAX];
    const char *why = NULL;
    int lineno = 0;

    if (!f) {
        t->host->cfg_error(t->ctx, "tokens_file", "cannot open %s: %s",
                           t->path, strerror(errno));
        return CC_E_INVAL;
    }
    while (!why && fgets(line, sizeof line, f)) {
        struct entry *e;

        lineno++;
        if (!strchr(line, '\n') && !feof(f))
            why = "line too long";
        else if ((why = parse_line(line, &e)) == NULL && e) {
            e->next = t->entries;
            t->entries = e;
        }
    }
    fclose(f);
    if (why) {
        t->host->cfg_error(t->ctx, "tokens_file", "%s:%d: %s", t->path,
                           lineno, why);
        return CC_E_INVAL;
    }
    return CC_OK;
}

/* ---------------------------------------------------------- lifecycle */

/* cfg_iter() calls this once per key of [auth] (except "plugin").
 * Refusing a key with a reason stops the daemon with file:line. */
static int tf_cfg_key(void *arg, const char *key, const char *value,
                      const char **reason)
{
    (void)arg;
    if (strcmp(key, "tokens_file") == 0 && value[0])
        return CC_OK;
    *reason = strcmp(key, "tokens_file") == 0 ? "needs a file name"
                                              : "unknown key";
    return CC_E_INVAL;
}

static void tf_destroy(void *inst)
{
    struct tokenfile *t = inst;

    if (!t)
        return;
    free_entries(t->entries);
    free(t);
}

static int tf_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct tokenfile *t = calloc(1, sizeof *t);
    int rc;

    if (!t)
        return CC_E_NOMEM;
    t->host = host;
    t->ctx = ctx;
    rc = host->cfg_iter(ctx, tf_cfg_key, t);
    /* Values handed to tf_cfg_key() are borrowed for the call only;
     * cfg_get() answers with a string that lives as long as we do. */
    t->path = host->cfg_get(ctx, "tokens_file");
    if (rc == CC_OK && !t->path) {
        host->cfg_error(ctx, NULL, "missing required key \"tokens_file\"");
        rc = CC_E_INVAL;
    }
    if (rc == CC_OK)
        rc = read_tokens(t);
    if (rc != CC_OK) {
        tf_destroy(t);
        return rc;
    }
    host->log(ctx, CC_LOG_INFO, "tokens from %s", t->path);
    *inst = t;
    return CC_OK;
}

/* Nothing to open or start: everything was read in create(). */
static int tf_start(void *inst)
{
    (void)inst;
    return CC_OK;
}

/* Nothing in flight: done at once. */
static void tf_stop(void *inst, cc_post_cb done, void *arg)
{
    (void)inst;
    done(arg);
}

/* ------------------------------------------------------ authenticate */

/* Compare without stopping at the first difference, so the time taken
 * does not tell a guesser how much of a guess was right. */
static int same_token(const struct entry *e, const char *tok, size_t len)
{
    unsigned char diff = e->token_len != len;

    for (size_t i = 0; i < len && i < e->token_len; i++)
        diff |= (unsigned char)(e->token[i] ^ tok[i]);
    return diff == 0;
}

/* Set the principal of e on req.  The host validates what it is given
 * (a user id without control characters, canonical UUIDs). */
static int set_principal(struct tokenfile *t, const struct entry *e,
                         cc_auth_req *req)
{
    const struct cc_host_api *h = t->host;

    if (h->auth_set_user(req, e->user) != CC_OK ||
        (e->patient && h->auth_set_patient(req, e->patient) != CC_OK) ||
        (e->professional &&
         h->auth_set_professional(req, e->professional) != CC_OK)) {
        h->log(t->ctx, CC_LOG_WARN, "%s: the entry of user %s has a bad "
               "id", t->path, e->user);
        h->auth_set_error(req, "Invalid token");
        return CC_AUTH_DENY;
    }
    h->auth_set_admin(req, e->admin);
    return CC_AUTH_OK;
}

/* Synchronous: the answer is known at once, so this plugin never
 * returns CC_AUTH_PENDING.  Never log the token itself. */
static int tf_authenticate(void *inst, const struct cc_auth_input *in,
                           cc_auth_req *req)
{
    struct tokenfile *t = inst;
    const struct entry *found = NULL;

    /* A host of a later minor may pass a larger struct; an older one a
     * smaller: read only members its struct_size covers. */
    if (!in || !CC_HAS_MEMBER(in, struct cc_auth_input, token_len) ||
        !in->token) {
        t->host->auth_set_error(req, "Invalid token");
        return CC_AUTH_DENY;
    }
    for (const struct entry *e = t->entries; e; e = e->next)
        if (same_token(e, in->token, in->token_len))
            found = e;
    if (!found) {
        t->host->auth_set_error(req, "Unknown token");
        return CC_AUTH_DENY;
    }
    return set_principal(t, found, req);
}

/* ------------------------------------------------------------- entry */

static const struct cc_auth_api tf_auth = {
    .struct_size = sizeof(struct cc_auth_api),
    .authenticate = tf_authenticate,
    .cancel = NULL, /* never pending, nothing to cancel */
};

static const void *tf_get_interface(void *inst, uint32_t kind)
{
    (void)inst;
    return kind == CC_KIND_AUTH ? &tf_auth : NULL;
}

static const struct cc_plugin tf_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_AUTH,
    .name = "tokenfile",
    .version = "1.0.0",
    .create = tf_create,
    .start = tf_start,
    .reload = NULL,
    .stop = tf_stop,
    .destroy = tf_destroy,
    .get_interface = tf_get_interface,
};

/* The one exported symbol.  Check the host's ABI first: same major, and
 * at least the minor whose members we use (1.0 here). */
CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) || !host ||
        !CC_HAS_MEMBER(host, struct cc_host_api, auth_set_error))
        return CC_E_ABI;
    *out = &tf_plugin;
    return CC_OK;
}
