/*
 * config.h - the INI configuration file: parsing (inih), sections, keys
 * with their line numbers, typed value parsing with precise errors.
 *
 * The config owns all its strings; lookups return borrowed pointers valid
 * until cc_conf_free().  Loop thread only (read-only after load).
 */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct cc_conf_entry {
    char *key;
    char *value;
    int line;
    struct cc_conf_entry *next;
};

struct cc_conf_section {
    char *name;
    int line;                     /* line of the [section] header */
    struct cc_conf_entry *entries; /* in file order */
    struct cc_conf_section *next;
};

struct cc_conf {
    char *path;                   /* file name, for messages */
    struct cc_conf_section *sections;
};

/* Parse the file at path.  Returns 0 and sets *out, or -1 with a message
 * "path:line: reason" in err. */
int cc_conf_load(const char *path, struct cc_conf **out, char *err,
                 size_t err_size);

/* Same from a string; name stands in for the file name in messages. */
int cc_conf_load_string(const char *text, const char *name,
                        struct cc_conf **out, char *err, size_t err_size);

void cc_conf_free(struct cc_conf *c);

/* The section called name, or NULL. */
struct cc_conf_section *cc_conf_section(const struct cc_conf *c,
                                        const char *name);

/* The last entry for key in section s (NULL-safe), or NULL. */
const struct cc_conf_entry *cc_conf_entry(const struct cc_conf_section *s,
                                          const char *key);
const char *cc_conf_get(const struct cc_conf_section *s, const char *key);

/* Value parsers: 0 on success, -1 with a static reason in *why. */
int cc_conf_parse_u64(const char *v, uint64_t min, uint64_t max,
                      uint64_t *out, const char **why);
/* Sizes accept k/K, m/M, g/G suffixes (powers of 1024). */
int cc_conf_parse_size(const char *v, uint64_t min, uint64_t max,
                       uint64_t *out, const char **why);
/* Durations: a number with s (default), ms, m or h; result in ms. */
int cc_conf_parse_duration_ms(const char *v, uint64_t min_ms,
                              uint64_t max_ms, uint64_t *out,
                              const char **why);
int cc_conf_parse_bool(const char *v, int *out, const char **why);
/* "host:port" or "[v6]:port" (numeric, nonzero port) into ss and *len:
 * 0, or -1 when v is not such an address.  Any thread. */
struct sockaddr_storage;
int cc_conf_parse_addr(const char *v, struct sockaddr_storage *ss, int *len);

#endif
