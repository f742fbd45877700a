/*
 * test_abi.c - the host's plugin checks: plugins built against the frozen
 * 1.0 and 1.1 headers load; missing files, missing entry points, other majors,
 * newer minors, short descriptors and plugins of the wrong kind are
 * refused with a message that names the file and the reason.
 */
#include "tap.h"
#include "plugintest.h"

#include <carechat/fanout.h>
#include <carechat/storage.h>

static char err[1024];

/* Path of a test plugin built by make check (tests/abi/.libs). */
static const char *abi_plugin(const char *name)
{
    static char buf[4096];
    const char *bd = getenv("CC_BUILDDIR");

    snprintf(buf, sizeof buf, "%s/tests/abi/.libs/%s.so", bd ? bd : ".",
             name);
    return buf;
}

static int try_load(const char *path, uint32_t kind, const char *section)
{
    struct pt_env env;
    int rc;
    char conf[256];

    snprintf(conf, sizeof conf, "[%s]\nplugin = x\n", section);
    err[0] = '\0';
    rc = pt_load(&env, path, kind, section, conf, err, sizeof err);
    pt_unload(&env);
    return rc;
}

static void expect_refused(const char *path, uint32_t kind,
                           const char *section, const char *why,
                           const char *what)
{
    is_int(try_load(path, kind, section), -1, "%s: refused", what);
    ok(strstr(err, path) == err, "%s: message names the file", what);
    ok(strstr(err, why) != NULL, "%s: says \"%s\" (got: %s)", what, why, err);
}

int main(void)
{
    char path[4096];

    is_int(try_load(abi_plugin("abi-good"), CC_KIND_FANOUT, "fanout"), 0,
           "plugin built against frozen 1.0 headers loads (%s)", err);
    is_int(try_load(abi_plugin("abi-good11"), CC_KIND_FANOUT, "fanout"), 0,
           "plugin built against frozen 1.1 headers loads (%s)", err);
    is_int(try_load(abi_plugin("abi-good12"), CC_KIND_FANOUT, "fanout"), 0,
           "plugin built against frozen 1.2 headers loads (%s)", err);
    is_int(try_load(abi_plugin("abi-good13"), CC_KIND_FANOUT, "fanout"), 0,
           "plugin built against frozen 1.3 headers loads (%s)", err);
    /* A storage table grew in 1.3 and 1.4: older, smaller ones load. */
    static const char *const storages[] = { "abi-good", "abi-good11",
                                            "abi-good12", "abi-good13" };
    for (size_t i = 0; i < 4; i++)
        is_int(try_load(abi_plugin(storages[i]), CC_KIND_STORAGE,
                        "storage"), 0,
               "%s loads as a storage plugin (%s)", storages[i], err);
    snprintf(path, sizeof path, "%s", abi_plugin("abi-badmajor"));
    expect_refused(path, CC_KIND_FANOUT, "fanout",
                   "incompatible plugin ABI (built for 2.0", "major 2");
    snprintf(path, sizeof path, "%s", abi_plugin("abi-noentry"));
    expect_refused(path, CC_KIND_FANOUT, "fanout",
                   "not a carechat plugin (no cc_plugin_entry symbol)",
                   "missing entry");
    snprintf(path, sizeof path, "%s", abi_plugin("abi-needminor"));
    expect_refused(path, CC_KIND_FANOUT, "fanout",
                   "plugin needs carechat ABI 1.99", "newer minor");
    snprintf(path, sizeof path, "%s", abi_plugin("abi-small"));
    expect_refused(path, CC_KIND_FANOUT, "fanout",
                   "descriptor too small", "short descriptor");
    snprintf(path, sizeof path, "%s", abi_plugin("abi-good"));
    expect_refused(path, CC_KIND_AUTH, "auth",
                   "plugin \"abitest\" is not a auth plugin", "wrong kind");
    snprintf(path, sizeof path, "%s", abi_plugin("no-such-plugin"));
    expect_refused(path, CC_KIND_STORAGE, "storage",
                   "No such file or directory", "missing file");
    snprintf(path, sizeof path, "%s", "/etc/hostname");
    expect_refused(path, CC_KIND_AUTH, "auth", "cannot load",
                   "not a shared object");
    return done_testing();
}
