/*
 * test_order.c - a chat's delivery order on a node (order.h), against a
 * storage that answers when the test says so: nothing is delivered
 * twice, nothing is lost, gaps are filled from storage in order, and the
 * read of where a chat stands never drops a message, in whichever order
 * its answer and the live copies arrive.
 */
#include "tap.h"

#include "frame.h"
#include "loop.h"
#include "order.h"
#include "store.h"

#include <carechat/storage.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT "c0000000-0000-4000-8000-0000000000aa"

/* ------------------------------------------------- a storage on a leash */

static struct {
    int pending;                /* a query waits for answer() */
    struct cc_message_query q;
    cc_store_cb cb;
    void *arg;
    int queries;
    int refuse;                 /* answer the next query with this status */
} st;

static int fake_list(void *inst, const struct cc_message_query *q,
                     cc_store_cb cb, void *arg)
{
    (void)inst;
    if (st.pending) {
        printf("# two reads in flight at once\n");
        abort();
    }
    st.pending = 1;
    st.q = *q;
    st.cb = cb;
    st.arg = arg;
    st.queries++;
    return CC_OK;
}

/* Answer the waiting query as a storage holding messages 1..newest:
 * status CC_OK unless refused. */
static void answer(int64_t newest)
{
    static char ids[256][48], text[256][24];
    struct cc_message msgs[256];
    const struct cc_message *ptrs[256];
    struct cc_store_result res = { .struct_size = sizeof res };
    int64_t from, to, n = 0;
    int status = st.refuse ? st.refuse : CC_OK;

    if (!st.pending)
        abort();
    st.pending = 0;
    st.refuse = 0;
    if (st.q.before_seq > 0) {           /* the newest one */
        from = to = newest;
    } else {
        from = st.q.after_seq + 1;
        to = newest;
        if (to - from + 1 > st.q.limit) {
            to = from + st.q.limit - 1;
            res.more = 1;
        }
    }
    for (int64_t s = from; s >= 1 && s <= to && status == CC_OK; s++) {
        snprintf(ids[n], sizeof ids[n], "a0000000-0000-4000-8000-%012lld",
                 (long long)s);
        snprintf(text[n], sizeof text[n], "m%lld", (long long)s);
        msgs[n] = (struct cc_message){
            .struct_size = sizeof msgs[n], .id = ids[n], .chat_id = CHAT,
            .sender_id = CHAT, .content = text[n],
            .content_len = strlen(text[n]), .seq = s,
            .sender_type = CC_SIDE_PATIENT,
        };
        ptrs[n] = &msgs[n];
        n++;
    }
    res.messages = ptrs;
    res.n_messages = (size_t)n;
    st.cb(st.arg, status, &res);
}

static const struct cc_storage_api fake_api = {
    .struct_size = sizeof fake_api, .message_list = fake_list,
};

/* ------------------------------------------------- what the members get */

static int64_t got[1024];
static int n_got;

static void deliver(void *arg, struct cc_frame *f)
{
    (void)arg;
    got[n_got++] = f->seq;
}

/* What was delivered, "1,2,3", then forgotten. */
static const char *delivered(void)
{
    static char buf[4096];
    size_t o = 0;

    buf[0] = '\0';
    for (int i = 0; i < n_got; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%lld",
                              i ? "," : "", (long long)got[i]);
    n_got = 0;
    return buf;
}

/* Offer seq; deliver it the way the hub does when the order says so. */
static void offer(struct cc_order *o, int64_t seq)
{
    if (cc_order_offer(o, seq))
        got[n_got++] = seq;
}

/* -------------------------------------------------------------- cases */

static void test_base_counts_a_message_still_on_its_way(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);

    ok(st.pending && st.q.before_seq > 0, "reads where the chat stands");
    answer(5);       /* 5 was stored just now; its live copy comes next */
    offer(o, 5);
    is_str(delivered(), "5", "its live copy is delivered, not dropped");
    offer(o, 6);
    offer(o, 5);
    is_str(delivered(), "6", "then the next; a second copy is dropped");
    ok(!st.pending, "no read for messages in order");
    cc_order_free(o);
}

static void test_first_message_before_the_base(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);

    offer(o, 3);
    offer(o, 4);
    is_str(delivered(), "3,4", "delivered while the base is being read");
    answer(4);
    offer(o, 5);
    is_str(delivered(), "5", "and on after it came");
    cc_order_free(o);
}

static void test_gap_after_the_base(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);

    answer(5);
    offer(o, 9);     /* 6..8 never came here */
    is_str(delivered(), "", "a gap: nothing out of order");
    ok(st.pending && st.q.after_seq == 5, "read after the newest known");
    offer(o, 10);
    answer(10);
    is_str(delivered(), "6,7,8,9,10", "the gap filled from storage, in "
           "order, with what came meanwhile");
    for (int s = 6; s <= 10; s++)
        offer(o, s);
    offer(o, 11);
    is_str(delivered(), "11", "late copies dropped, the next delivered");
    cc_order_free(o);
}

static void test_gap_later_and_paging(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);
    char want[4096];
    size_t n = 0;

    answer(0);
    offer(o, 1);
    delivered();
    offer(o, 1 + CC_ORDER_PAGE + 50);   /* a long absence */
    answer(1 + CC_ORDER_PAGE + 50);
    ok(st.pending, "a page was not enough: another read");
    answer(1 + CC_ORDER_PAGE + 50);
    for (int s = 2; s <= 1 + CC_ORDER_PAGE + 50; s++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%s%d",
                              s > 2 ? "," : "", s);
    is_str(delivered(), want, "every missed message once, in order");
    ok(!st.pending, "no read once caught up");
    cc_order_free(o);
}

static void test_resync(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);

    answer(2);
    offer(o, 3);
    delivered();
    cc_order_resync(o);   /* the link was down: 4..6 were missed */
    ok(st.pending && st.q.after_seq == 3, "resync reads after the last");
    answer(6);
    is_str(delivered(), "4,5,6", "what was missed, without a new message");
    ok(!st.pending, "storage had no more: done");
    cc_order_free(o);

    o = cc_order_new(CHAT, deliver, NULL);
    answer(7);
    cc_order_resync(o);   /* nothing delivered yet: from the base */
    answer(9);
    is_str(delivered(), "8,9", "a resync before any message starts at the "
           "base");
    cc_order_free(o);
}

static void test_failed_read_is_retried(struct event_base *base)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);
    int before;

    answer(1);
    offer(o, 2);
    delivered();
    offer(o, 4);
    st.refuse = CC_E_UNAVAIL;
    before = st.queries;
    answer(4);
    ok(!st.pending, "a failed read is not repeated at once");
    offer(o, 5);
    ok(!st.pending, "nor by the next message");
    event_base_loopexit(base, &(struct timeval){ 0,
                                                 CC_ORDER_RETRY_MS * 1500 });
    event_base_dispatch(base);
    ok(st.pending && st.queries == before + 1, "tried again after %d ms",
       CC_ORDER_RETRY_MS);
    answer(5);
    is_str(delivered(), "3,4,5", "then filled");
    cc_order_free(o);
}

static void test_freed_while_reading(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver, NULL);

    answer(1);
    offer(o, 1);
    delivered();
    offer(o, 3);
    cc_order_free(o);     /* the last member left */
    answer(3);
    is_str(delivered(), "", "nothing delivered after the free");
}

/* The member a page is being delivered to leaves on the page's first
 * message (dropped for not reading), which frees the chat's order: the
 * rest of the page is not delivered, and nothing uses the order after
 * (a use after free, seen by ASan under a fan-out resync). */
static struct cc_order *leaving;

static void deliver_then_leave(void *arg, struct cc_frame *f)
{
    (void)arg;
    got[n_got++] = f->seq;
    if (leaving) {
        struct cc_order *o = leaving;
        leaving = NULL;
        cc_order_free(o);
    }
}

static void test_freed_while_delivering(void)
{
    struct cc_order *o = cc_order_new(CHAT, deliver_then_leave, NULL);

    answer(1);
    offer(o, 1);
    delivered();
    offer(o, 5);          /* a gap: 2..5 are read from storage */
    leaving = o;
    answer(5);
    is_str(delivered(), "2", "the page stops at the member's leaving");
    is_int(st.pending, 0, "and nothing reads again for a freed order");
}

int main(void)
{
    struct event_base *base;

    evthread_use_pthreads();
    base = event_base_new();
    cc_loops_init(base);
    cc_store_attach(&fake_api, NULL, CC_ABI_VERSION);
    test_base_counts_a_message_still_on_its_way();
    test_first_message_before_the_base();
    test_gap_after_the_base();
    test_gap_later_and_paging();
    test_resync();
    test_failed_read_is_retried(base);
    test_freed_while_reading();
    test_freed_while_delivering();
    cc_loops_free();
    event_base_free(base);
    return done_testing();
}
