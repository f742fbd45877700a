/*
 * config.c - the INI configuration file (see config.h).
 *
 * inih does the lexing.  Debian's build of inih does not pass line numbers
 * to the handler, so we feed it through our own reader that counts lines:
 * inih calls the handler right after reading the line it belongs to.
 */
#include "config.h"
#include "xalloc.h"

#include <errno.h>
#include <event2/util.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct reader {
    FILE *fp;          /* file input, or */
    const char *text;  /* string input */
    int line;          /* lines read so far */
    int too_long;      /* line number of the first over-long line */
};

struct load {
    struct cc_conf *conf;
    struct reader rd;
    struct cc_conf_section *cur;
    struct cc_conf_entry **tail;
};

#define LINE_MAX_BYTES 4096

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static struct cc_conf_section *section_get_or_add(struct load *ld,
                                                  const char *name);

/* inih reports a section only along with its first key: record every
 * [header] as it is read, so an empty section is still checked by name
 * and a section's line is its header's. */
static void note_section(struct load *ld, const char *line)
{
    const char *p = line, *end;
    char name[128];

    if (ld->rd.line == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* a UTF-8 byte order mark */
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '[' || !(end = strchr(p + 1, ']')) || end == p + 1 ||
        (size_t)(end - p - 1) >= sizeof name)
        return;
    memcpy(name, p + 1, (size_t)(end - p - 1));
    name[end - p - 1] = '\0';
    section_get_or_add(ld, name);
}

/* fgets-like reader for inih over a FILE or a string, counting lines. */
static char *read_line(char *str, int num, void *stream)
{
    struct load *ld = stream;
    struct reader *rd = &ld->rd;
    size_t n = 0;

    if (rd->fp) {
        if (!fgets(str, num, rd->fp))
            return NULL;
        n = strlen(str);
        if (n > 0 && str[n - 1] != '\n' && !feof(rd->fp)) {
            int c;
            if (!rd->too_long)
                rd->too_long = rd->line + 1;
            while ((c = fgetc(rd->fp)) != EOF && c != '\n')
                ;
        }
    } else {
        if (!*rd->text)
            return NULL;
        while (rd->text[n] && rd->text[n] != '\n' && n + 2 < (size_t)num)
            n++;
        if (rd->text[n] == '\n')
            n++;
        else if (rd->text[n] && !rd->too_long)
            rd->too_long = rd->line + 1;
        memcpy(str, rd->text, n);
        str[n] = '\0';
        rd->text += n;
        while (rd->too_long == rd->line + 1 && *rd->text &&
               *rd->text != '\n')
            rd->text++;
    }
    rd->line++;
    note_section(ld, str);
    return str;
}

static struct cc_conf_section *section_get_or_add(struct load *ld,
                                                  const char *name)
{
    struct cc_conf_section **pp = &ld->conf->sections;

    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0)
            return *pp;
    *pp = cc_xcalloc(1, sizeof **pp);
    (*pp)->name = xstrdup(name);
    (*pp)->line = ld->rd.line;
    return *pp;
}

static int on_entry(void *user, const char *section, const char *name,
                    const char *value)
{
    struct load *ld = user;
    struct cc_conf_section *s;
    struct cc_conf_entry *e, **pp;

    if (!section[0])
        return 0; /* keys before any [section] */
    s = section_get_or_add(ld, section);
    e = cc_xcalloc(1, sizeof *e);
    e->key = xstrdup(name);
    e->value = xstrdup(value ? value : "");
    e->line = ld->rd.line;
    for (pp = &s->entries; *pp; pp = &(*pp)->next)
        ;
    *pp = e;
    return 1;
}

static int load_common(struct load *ld, const char *name, char *err,
                       size_t err_size)
{
    int rc;

    ld->conf->path = xstrdup(name);
    rc = ini_parse_stream(read_line, ld, on_entry, ld);
    if (ld->rd.too_long) {
        snprintf(err, err_size, "%s:%d: line longer than %d bytes", name,
                 ld->rd.too_long, LINE_MAX_BYTES - 3);
        return -1;
    }
    if (rc > 0) {
        snprintf(err, err_size,
                 "%s:%d: syntax error (expected [section] or key = value, "
                 "and keys inside a section)",
                 name, rc);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, err_size, "%s: cannot parse (out of memory)", name);
        return -1;
    }
    return 0;
}

static void setup_inih(void)
{
    /* Debian's inih exposes these as run-time settings. */
    ini_max_line = LINE_MAX_BYTES;
    ini_allow_inline_comments = 1;
}

int cc_conf_load(const char *path, struct cc_conf **out, char *err,
                 size_t err_size)
{
    struct load ld = { 0 };
    int rc;

    *out = NULL;
    ld.rd.fp = fopen(path, "r");
    if (!ld.rd.fp) {
        snprintf(err, err_size, "%s: cannot open: %s", path,
                 strerror(errno));
        return -1;
    }
    setup_inih();
    ld.conf = cc_xcalloc(1, sizeof *ld.conf);
    rc = load_common(&ld, path, err, err_size);
    fclose(ld.rd.fp);
    if (rc < 0) {
        cc_conf_free(ld.conf);
        return -1;
    }
    *out = ld.conf;
    return 0;
}

int cc_conf_load_string(const char *text, const char *name,
                        struct cc_conf **out, char *err, size_t err_size)
{
    struct load ld = { 0 };

    *out = NULL;
    setup_inih();
    ld.rd.text = text;
    ld.conf = cc_xcalloc(1, sizeof *ld.conf);
    if (load_common(&ld, name, err, err_size) < 0) {
        cc_conf_free(ld.conf);
        return -1;
    }
    *out = ld.conf;
    return 0;
}

void cc_conf_free(struct cc_conf *c)
{
    struct cc_conf_section *s, *sn;
    struct cc_conf_entry *e, *en;

    if (!c)
        return;
    for (s = c->sections; s; s = sn) {
        sn = s->next;
        for (e = s->entries; e; e = en) {
            en = e->next;
            free(e->key);
            /* values may be secrets (secret = ...): wipe before free */
            explicit_bzero(e->value, strlen(e->value));
            free(e->value);
            free(e);
        }
        free(s->name);
        free(s);
    }
    free(c->path);
    free(c);
}

struct cc_conf_section *cc_conf_section(const struct cc_conf *c,
                                        const char *name)
{
    for (struct cc_conf_section *s = c ? c->sections : NULL; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

const struct cc_conf_entry *cc_conf_entry(const struct cc_conf_section *s,
                                          const char *key)
{
    const struct cc_conf_entry *found = NULL;

    for (const struct cc_conf_entry *e = s ? s->entries : NULL; e;
         e = e->next)
        if (strcmp(e->key, key) == 0)
            found = e;
    return found;
}

const char *cc_conf_get(const struct cc_conf_section *s, const char *key)
{
    const struct cc_conf_entry *e = cc_conf_entry(s, key);

    return e ? e->value : NULL;
}

/* Parse a decimal number with an optional suffix; *end gets the suffix. */
static int parse_num(const char *v, uint64_t *out, const char **end,
                     const char **why)
{
    uint64_t n = 0;
    const char *p = v;

    if (!v || *p < '0' || *p > '9') {
        *why = "expected a non-negative number";
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10) {
            *why = "number too large";
            return -1;
        }
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *out = n;
    *end = p;
    return 0;
}

static int check_range(uint64_t n, uint64_t min, uint64_t max,
                       const char **why)
{
    if (n < min) {
        *why = "value too small";
        return -1;
    }
    if (n > max) {
        *why = "value too large";
        return -1;
    }
    return 0;
}

int cc_conf_parse_u64(const char *v, uint64_t min, uint64_t max,
                      uint64_t *out, const char **why)
{
    const char *end;
    uint64_t n;

    if (parse_num(v, &n, &end, why) < 0)
        return -1;
    if (*end) {
        *why = "expected a whole number";
        return -1;
    }
    if (check_range(n, min, max, why) < 0)
        return -1;
    *out = n;
    return 0;
}

/* Multiply n by mult, refusing overflow. */
static int scale(uint64_t *n, uint64_t mult, const char **why)
{
    if (mult && *n > UINT64_MAX / mult) {
        *why = "number too large";
        return -1;
    }
    *n *= mult;
    return 0;
}

int cc_conf_parse_size(const char *v, uint64_t min, uint64_t max,
                       uint64_t *out, const char **why)
{
    const char *end;
    uint64_t n, mult = 1;

    if (parse_num(v, &n, &end, why) < 0)
        return -1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mult = 1024; break;
        case 'm': case 'M': mult = 1024 * 1024; break;
        case 'g': case 'G': mult = 1024 * 1024 * 1024; break;
        default: mult = 0;
        }
        if (!mult || (end[1] && strcasecmp(end + 1, "b") &&
                      strcasecmp(end + 1, "ib"))) {
            *why = "expected a size such as 65536, 64k or 1m";
            return -1;
        }
    }
    if (scale(&n, mult, why) < 0 || check_range(n, min, max, why) < 0)
        return -1;
    *out = n;
    return 0;
}

int cc_conf_parse_duration_ms(const char *v, uint64_t min_ms,
                              uint64_t max_ms, uint64_t *out,
                              const char **why)
{
    const char *end;
    uint64_t n, mult;

    if (parse_num(v, &n, &end, why) < 0)
        return -1;
    if (!*end || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else {
        *why = "expected a duration such as 30, 30s, 500ms, 5m or 1h";
        return -1;
    }
    if (scale(&n, mult, why) < 0 || check_range(n, min_ms, max_ms, why) < 0)
        return -1;
    *out = n;
    return 0;
}

int cc_conf_parse_bool(const char *v, int *out, const char **why)
{
    static const char *yes[] = { "1", "yes", "true", "on" };
    static const char *no[] = { "0", "no", "false", "off" };

    for (int i = 0; v && i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    *why = "expected yes or no";
    return -1;
}

int cc_conf_parse_addr(const char *v, struct sockaddr_storage *ss, int *len)
{
    *len = sizeof *ss;
    memset(ss, 0, sizeof *ss);
    return evutil_parse_sockaddr_port(v, (struct sockaddr *)ss, len) < 0 ||
                   ((struct sockaddr_in *)ss)->sin_port == 0
               ? -1
               : 0;
}
