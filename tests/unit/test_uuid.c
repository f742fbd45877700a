/* test_uuid.c - UUID parsing, UUIDv7 generation, protocol timestamps. */
#include "tap.h"
#include "timefmt.h"
#include "uuid.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_canon(void)
{
    char out[37];
    const char *up = "550E8400-E29B-41D4-A716-446655440000";

    is_int(cc_uuid_canon(up, strlen(up), out), 0, "upper-case UUID parses");
    is_str(out, "550e8400-e29b-41d4-a716-446655440000",
           "canonical form is lower case");
    is_int(cc_uuid_canon(up, 35, out), -1, "35 characters refused");
    is_int(cc_uuid_canon("550e8400e29b41d4a716446655440000xxxx", 36, out),
           -1, "missing dashes refused");
    is_int(cc_uuid_canon("550e8400-e29b-41d4-a716-44665544000g", 36, out),
           -1, "non-hex digit refused");
    is_int(cc_uuid_canon("550e8400-e29b-41d4-a716-4466554400-0", 36, out),
           -1, "dash in the wrong place refused");
    ok(cc_uuid_valid("00000000-0000-0000-0000-000000000000"),
       "nil UUID is a valid UUID");
    ok(!cc_uuid_valid(""), "empty string is not a UUID");
    ok(!cc_uuid_valid("../../etc/passwd"), "path is not a UUID");
    ok(!cc_uuid_valid(NULL), "NULL is not a UUID");
}

static void test_v7(void)
{
    char a[37], b[37], c[37];
    int64_t t = 1765103400123456LL; /* 2025-12-07T10:30:00.123456Z */

    cc_uuid_v7(t, a);
    cc_uuid_v7(t, b);
    cc_uuid_v7(t + 1000, c);
    ok(cc_uuid_valid(a), "v7 is a UUID");
    is_int(a[14], '7', "version nibble is 7");
    ok(strchr("89ab", a[19]) != NULL, "variant is RFC 9562");
    ok(strncmp(a, "019af85c-", 9) == 0,
       "first 48 bits are the unix milliseconds (%.9s)", a);
    ok(strcmp(a, b) != 0, "two ids in the same microsecond differ");
    ok(strcmp(a, c) < 0 && strcmp(b, c) < 0,
       "a later millisecond sorts after");
    cc_uuid_v7(t + 500, c);
    ok(strncmp(a, c, 18) < 0, "sub-millisecond fraction orders ids");
    /* Many ids in the same microsecond (a batch stored at once) still
     * sort in the order they were made. */
    int sorted = 1;
    cc_uuid_v7(t + 2000, a);
    for (int i = 0; i < 10000; i++) {
        cc_uuid_v7(t + 2000, b);
        if (strcmp(a, b) >= 0)
            sorted = 0;
        memcpy(a, b, sizeof a);
    }
    ok(sorted, "10,000 ids of one microsecond sort in order made");
}

/* The random halves (the last 17 characters) of ids made on two threads
 * at once, across many refills of each thread's pool, are all distinct. */
#define N_RAND 20000
static char rand_half[2 * N_RAND][18];

static void *make_ids(void *arg)
{
    char (*dst)[18] = arg, id[CC_UUID_LEN + 1];

    for (int i = 0; i < N_RAND; i++) {
        cc_uuid_v7(cc_time_now_us(), id);
        memcpy(dst[i], id + 19, 18);
    }
    return NULL;
}

static int cmp_half(const void *a, const void *b)
{
    return memcmp(a, b, 18);
}

static void test_random(void)
{
    pthread_t th;
    int same = 0;

    ok(pthread_create(&th, NULL, make_ids, rand_half[N_RAND]) == 0,
       "second thread started");
    make_ids(rand_half[0]);
    pthread_join(th, NULL);
    qsort(rand_half, 2 * N_RAND, sizeof rand_half[0], cmp_half);
    for (int i = 1; i < 2 * N_RAND; i++)
        same += memcmp(rand_half[i - 1], rand_half[i], 18) == 0;
    is_int(same, 0, "random halves of %d ids from two threads distinct",
           2 * N_RAND);
}

static void test_time(void)
{
    char out[CC_TIME_LEN + 1];

    is_str(cc_time_format(1765103400123456LL, out),
           "2025-12-07T10:30:00.123456Z", "spec example timestamp");
    is_str(cc_time_format(0, out), "1970-01-01T00:00:00.000000Z", "epoch");
    is_str(cc_time_format(951782400000001LL, out),
           "2000-02-29T00:00:00.000001Z", "leap day 2000");
    is_str(cc_time_format(4107542399999999LL, out),
           "2100-02-28T23:59:59.999999Z", "2100 is not a leap year");
    is_str(cc_time_format(-1, out), "1969-12-31T23:59:59.999999Z",
           "one microsecond before the epoch");
    is_str(cc_time_format(INT64_MAX, out), "9999-12-31T23:59:59.999999Z",
           "far future is clamped");
    is_int((long long)strlen(out), CC_TIME_LEN, "fixed width");
    ok(cc_time_now_us() > 1700000000000000LL, "clock reads the present");

    /* cc_time_parse is its inverse (metrics read created_at back). */
    static const int64_t back[] = { 1765103400123456LL, 0, 951782400000001LL,
                                    4107542399999999LL, -1 };
    for (size_t i = 0; i < sizeof back / sizeof back[0]; i++) {
        int64_t t = 42;
        cc_time_format(back[i], out);
        is_int(cc_time_parse(out, &t), 0, "parse %s", out);
        is_int((long long)t, (long long)back[i], "round trip %s", out);
    }
    int64_t t;
    is_int(cc_time_parse("2025-13-07T10:30:00.123456Z", &t), -1,
           "month 13 refused");
    is_int(cc_time_parse("2025-12-07 10:30:00.123456Z", &t), -1,
           "a space for T refused");
    is_int(cc_time_parse("2025-12-07T10:30:00.12345xZ", &t), -1,
           "a letter in the fraction refused");
}

int main(void)
{
    test_canon();
    test_v7();
    test_random();
    test_time();
    return done_testing();
}
